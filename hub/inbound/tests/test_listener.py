"""The inbound listener end to end: a real `manage.py hub_inbound` process, a message really
sent through the delivery engine with a VERP envelope sender, and its DSN returned over real
SMTP. Refusals (any RCPT but a valid bounce address, a forged one, an oversized report) write
nothing."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port, stop_process, subprocess_database_url
from hub.delivery import verp
from hub.delivery.outbox import deliver_batch
from hub.inbound.models import Report
from hub.models import FailureType, SendLog, Suppression

from .conftest import BOUNCE_DOMAIN, sample

REPO_ROOT = Path(__file__).resolve().parents[3]
MAX_BYTES = 20000

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def listener(transactional_db, settings, tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": subprocess_database_url(), "DEBUG": "1", "SECRET_KEY": settings.SECRET_KEY,
           "HUB_BOUNCE_DOMAIN": BOUNCE_DOMAIN, "HUB_INBOUND_HOST": "127.0.0.1", "HUB_INBOUND_PORT": str(port),
           "HUB_INBOUND_MAX_BYTES": str(MAX_BYTES), "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "inbound.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "hub_inbound"], cwd=REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while b"inbound ready" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            pytest.fail(f"hub_inbound did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.05)
    yield port
    stop_process(proc)


def smtp(port: int) -> smtplib.SMTP:
    conn = smtplib.SMTP("127.0.0.1", port, timeout=10)
    conn.ehlo("mx.example.net")
    return conn


@pytest.fixture
def delivered(smtp_sink, make_server, make_app, account):
    """A message really sent by the delivery engine with a VERP envelope sender (the sink
    shows MAIL FROM)."""
    app = make_app(make_server(smtp_sink, verp_return_path=True), account=account).app
    row = SendLog.objects.create(app=app, to="ghost@example.com", subject="Hello", html_body="<p>x</p>",
                                 message_id="<hello.1@example.org>")
    deliver_batch([row.id])
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT
    (received,) = smtp_sink.messages
    assert verp.parse(received.mail_from) == row.id
    return row, received.mail_from


def test_a_dsn_to_the_verp_address_bounces_and_suppresses(listener, delivered):
    row, return_path = delivered
    conn = smtp(listener)
    conn.sendmail("", [return_path], sample("postfix-user-unknown.eml", row, crlf=True))
    conn.quit()

    row.refresh_from_db()
    assert (row.status, row.failure_type) == (SendLog.Status.FAILED, FailureType.NOT_EXIST)
    entry = Suppression.objects.get()
    assert (entry.email, entry.cause, entry.account_id) == ("ghost@example.com", "hard_bounce",
                                                            row.app.account_id)
    assert list(Report.objects.values_list("kind", "source", "matched_by")) == [("bounce", "smtp", "verp")]


@pytest.mark.parametrize("rcpt", ["postmaster@bounce.example", "someone@example.com", ("b-1-00000000000000000000@"
                                  "bounce.example"), "{forged}"])
def test_any_other_recipient_is_refused(listener, delivered, rcpt):
    row, return_path = delivered
    forged = return_path.replace(return_path.split("-")[2][:4], "0000")
    conn = smtp(listener)
    conn.mail("")
    code, _msg = conn.rcpt(rcpt.format(forged=forged))
    assert code == 550
    with pytest.raises(smtplib.SMTPDataError) as refused:
        conn.data(sample("postfix-user-unknown.eml", row, crlf=True))
    assert refused.value.smtp_code == 503  # no valid recipient: no DATA
    conn.quit()
    assert not Report.objects.exists() and not Suppression.objects.exists()
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT


def test_an_oversized_report_is_refused(listener, delivered):
    row, return_path = delivered
    raw = sample("postfix-user-unknown.eml", row, crlf=True)
    raw = raw.replace(b"This is a MIME-encapsulated message.", b"x" * 78 + (b"\r\n" + b"x" * 78) * 400)
    assert len(raw) > MAX_BYTES
    conn = smtp(listener)
    # Announced with SIZE (smtplib does): refused at MAIL FROM.
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        conn.sendmail("", [return_path], raw)
    assert refused.value.smtp_code == 552
    # Not announced: refused at the end of DATA, before anything is processed.
    conn.rset()
    conn.mail("")
    assert conn.rcpt(return_path)[0] == 250
    assert conn.data(raw)[0] == 552
    assert not Report.objects.exists() and not Suppression.objects.exists()
