"""End to end through the real worker: the API queues a message (no `sync`), a real
`manage.py qcluster` process, started here against the test database, picks the task off
the broker and delivers it to an SMTP server. Proves the path production uses, not the
in-process shortcut the other tests take."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import stop_process, subprocess_database_url
from hub.models import SendLog

REPO_ROOT = Path(__file__).resolve().parents[2]
DELIVERY_DEADLINE = 30  # seconds; the cluster polls the ORM broker every 0.1 s
STOP_DEADLINE = 15

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]



@pytest.fixture
def qcluster(transactional_db, tmp_path):
    """A real cluster process. Torn down before transactional_db flushes the tables, so the
    cluster never writes into a database being emptied."""
    log_path = tmp_path / "qcluster.log"
    # DEBUG=1 and no keys: the child derives the same development keys from SECRET_KEY as
    # this process (hub/crypto.py), so it can decrypt the SMTP password stored here; with
    # DEBUG off the hub.E00x system checks would refuse those keys and the cluster.
    env = {**os.environ, "DATABASE_URL": subprocess_database_url(), "DEBUG": "1", "Q_WORKERS": "1"}
    with open(log_path, "wb") as log:
        # Own session: if it must be killed, its worker children go with it.
        proc = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=REPO_ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, log_path
    finally:
        stop_process(proc, STOP_DEADLINE)


def log_tail(path: Path) -> str:
    return path.read_bytes()[-4000:].decode("utf-8", "replace")


# The sink comes before the cluster in the arguments so it is torn down after it: the
# worker may hold a pooled connection to it until it stops.
def test_api_message_is_delivered_by_a_real_qcluster(smtp_sink_factory, make_server, make_app, client, qcluster):
    proc, log_path = qcluster
    # STARTTLS + AUTH: the worker must also decrypt the password this process stored.
    sink = smtp_sink_factory("starttls", username="worker@example.com", password="worker-Pa55")
    provisioned = make_app(make_server(sink, security="starttls", verify_tls=False))

    response = client.post("/api/v1/send", {
        **provisioned.creds, "to": "Reader <reader@example.com>", "subject": "经由队列发送",
        "message": "<p>delivered by the worker</p>",
    })

    body = response.json()
    assert response.status_code == 200 and body["code"] == 0, body
    assert body["status"] == SendLog.Status.QUEUED
    row = SendLog.objects.get(pk=body["id"])

    deadline = time.monotonic() + DELIVERY_DEADLINE
    while row.status != SendLog.Status.SENT and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"qcluster exited with {proc.returncode}:\n{log_tail(log_path)}")
        if row.status == SendLog.Status.FAILED:
            break
        time.sleep(0.2)
        row.refresh_from_db()

    assert row.status == SendLog.Status.SENT, f"{row.status} {row.error}\n{log_tail(log_path)}"
    assert row.smtp_code == 250
    assert row.attempts == 1
    assert row.sent_at is not None
    [received] = sink.messages
    assert received.rcpt_tos == ["reader@example.com"]
    assert received.message["X-SMTPHub-Log-ID"] == str(row.id)
    assert received.message["Subject"] == "经由队列发送"
