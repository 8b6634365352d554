"""End to end through a real `manage.py qcluster` process: a message sent over the API is
delivered by the worker, the outcome's commit wakes the webhook drain, and the same worker
POSTs the signed event to the test's receiver. Proves the task names, the wake-up after a
real commit, and the secret decrypted in another process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import stop_process, subprocess_database_url
from hub.models import SendLog
from hub.webhooks.models import Event

REPO_ROOT = Path(__file__).resolve().parents[3]
DEADLINE = 30  # seconds; the cluster polls the ORM broker every 0.1 s

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def qcluster(transactional_db, tmp_path):
    log_path = tmp_path / "qcluster.log"
    # DEBUG=1: the child derives the same development encryption keys from SECRET_KEY as
    # this process, so it can decrypt the endpoint's secret stored here.
    env = {**os.environ, "DATABASE_URL": subprocess_database_url(), "DEBUG": "1", "Q_WORKERS": "1",
           "HUB_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=REPO_ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, log_path
    finally:
        stop_process(proc, 15)


def test_a_real_worker_delivers_the_mail_then_the_webhook(smtp_sink_factory, make_server, make_app, client,
                                                          receiver, make_endpoint, qcluster):
    proc, log_path = qcluster
    provisioned = make_app(make_server(smtp_sink_factory()))
    make_endpoint(provisioned.app.account, receiver.url, kinds="sent")
    response = client.post("/api/v1/send", {**provisioned.creds, "to": "reader@example.com", "subject": "经由队列",
                                            "message": "<p>hi</p>"})
    assert response.status_code == 200, response.content
    log_id = response.json()["id"]

    deadline = time.monotonic() + DEADLINE
    while not receiver.requests and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"qcluster exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)
    tail = log_path.read_bytes()[-4000:].decode("utf-8", "replace")
    assert len(receiver.accepted) == 1, tail
    [event] = receiver.accepted[0].events
    assert (event["type"], event["email"], event["log_id"]) == ("sent", "reader@example.com", log_id)
    assert SendLog.objects.get(pk=log_id).status == SendLog.Status.SENT
    deadline = time.monotonic() + DEADLINE
    while Event.objects.get().status != "delivered" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Event.objects.get().status == "delivered", tail
