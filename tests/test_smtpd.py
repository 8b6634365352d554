"""The SMTP submission server as its users meet it: `manage.py smtpd` started as a real
process against the test database, real clients (Python's smtplib, swaks) talking to it over
STARTTLS, implicit TLS and plain text, and the queued message delivered to an in-process
aiosmtpd sink. Covers AUTH (PLAIN and LOGIN, wrong secret, disabled app, AUTH without TLS),
the refusals as SMTP replies (552, 550, 452, 553) with nothing written, the From policy, BCC
never reaching headers, the DATA reply naming a committed row, and graceful shutdown.

Over 400 lines on purpose: the whole SMTP conversation as clients meet it, sharing the
running-server fixtures; each test is one client story."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.test import override_settings
from django_q.models import OrmQ

from conftest import free_port, stop_process, subprocess_database_url
from hub.models import SendLog, Suppression

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_DEADLINE = 30  # seconds for Django to start and the listener to bind
STOP_DEADLINE = 15
GRACE = 2  # HUB_SMTPD_SHUTDOWN_GRACE for every server started here
CLIENT_TIMEOUT = 10
SENDER = "hub@example.com"  # the upstream server's from_email

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


# --- the server process ---------------------------------------------------------------------


@dataclass
class Smtpd:
    proc: subprocess.Popen
    port: int
    tls_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_bytes()[-4000:].decode("utf-8", "replace")


def _stop(server: Smtpd) -> None:
    """SIGTERM (the graceful path), then SIGKILL if it does not go."""
    stop_process(server.proc, STOP_DEADLINE)


@pytest.fixture
def start_smtpd(transactional_db, tls_files, tmp_path):
    """Start `manage.py smtpd` with extra environment; STARTTLS is on unless tls=False,
    implicit TLS too with implicit_tls=True. Stopped (always) before transactional_db
    empties the tables, so the server never writes into a database being flushed."""
    started: list[Smtpd] = []
    cert, key = tls_files

    def start(tls: bool = True, implicit_tls: bool = False, **extra: str) -> Smtpd:
        port = free_port()
        tls_port = free_port() if implicit_tls else 0
        # DEBUG=1: the child derives the same development keys from SECRET_KEY as this
        # process, so the app secrets stored here check out there.
        env = {**os.environ, "DATABASE_URL": subprocess_database_url(), "DEBUG": "1",
               "HUB_SMTPD_HOST": "127.0.0.1", "HUB_SMTPD_PORT": str(port), "HUB_SMTPD_TLS_PORT": str(tls_port),
               "HUB_SMTPD_TLS_CERT": str(cert) if tls else "", "HUB_SMTPD_TLS_KEY": str(key) if tls else "",
               "HUB_SMTPD_SHUTDOWN_GRACE": str(GRACE), "HUB_SMTPD_ALLOW_PLAINTEXT_AUTH": "0",
               "HUB_SMTPD_TIMEOUT": "30", "PYTHONUNBUFFERED": "1", **extra}
        log_path = tmp_path / f"smtpd-{len(started)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "manage.py", "smtpd"], cwd=REPO_ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = Smtpd(proc, port, tls_port, log_path)
        started.append(server)
        deadline = time.monotonic() + READY_DEADLINE
        while b"smtpd ready" not in log_path.read_bytes():
            if proc.poll() is not None:
                pytest.fail(f"smtpd exited with {proc.returncode}:\n{server.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"smtpd not ready after {READY_DEADLINE}s:\n{server.log()}")
            time.sleep(0.05)
        return server

    yield start
    for server in started:
        _stop(server)


# --- clients --------------------------------------------------------------------------------

def client_tls(tls_files) -> ssl.SSLContext:
    """Verifies the server's self-signed certificate (issued for 127.0.0.1)."""
    return ssl.create_default_context(cafile=str(tls_files[0]))


def connect(server: Smtpd, tls_files=None) -> smtplib.SMTP:
    """EHLO, and STARTTLS + EHLO again when tls_files are given."""
    conn = smtplib.SMTP("127.0.0.1", server.port, local_hostname="client.test", timeout=CLIENT_TIMEOUT)
    conn.ehlo()
    if tls_files is not None:
        conn.starttls(context=client_tls(tls_files))
        conn.ehlo()
    return conn


def auth_login(conn: smtplib.SMTP, user: str, password: str) -> tuple[int, bytes]:
    """AUTH LOGIN, the classic three-step exchange (no initial response): smtplib's
    login() would pick PLAIN, the server offers both."""
    conn.user, conn.password = user, password
    return conn.auth("LOGIN", conn.auth_login, initial_response_ok=False)


def auth_plain_cmd(conn: smtplib.SMTP, user: str, password: str) -> tuple[int, bytes]:
    """AUTH PLAIN sent by hand: also works when the server did not advertise AUTH."""
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return conn.docmd("AUTH", "PLAIN " + token)


def submit(conn: smtplib.SMTP, mail_from: str, rcpts: list[str], data: bytes) -> tuple[int, str]:
    """One transaction; returns the reply to DATA (sendmail() would hide its text)."""
    code, resp = conn.mail(mail_from)
    assert code == 250, (code, resp)
    for rcpt in rcpts:
        code, resp = conn.rcpt(rcpt)
        assert code == 250, (rcpt, code, resp)
    code, resp = conn.data(data)
    return code, resp.decode()


def queued_id(reply: str) -> int:
    match = re.search(r"queued as (\d+)", reply)
    assert match, reply
    return int(match.group(1))


def html_message(**headers: str) -> bytes:
    msg = EmailMessage()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("纯文本版本 plain text")
    msg.add_alternative("<p>你好，<b>HTML</b> 邮件</p>", subtype="html")
    return msg.as_bytes(policy=policy.SMTP)


def body_of(raw: bytes) -> bytes:
    return re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[1]


def assert_nothing_written(sink=None) -> None:
    assert SendLog.objects.count() == 0
    assert OrmQ.objects.count() == 0
    if sink is not None:
        assert sink.messages == []


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    """The sink, the upstream server pointing at it, and an app bound to that server."""
    server = make_server(smtp_sink, from_email=SENDER)
    return smtp_sink, server, make_app(server, name="SMTP 客户端", from_name="")


# --- the main path: smtplib, STARTTLS, AUTH LOGIN, HTML with CC and BCC ------------------------

def test_smtplib_starttls_auth_login_html_cc_bcc(start_smtpd, tls_files, hub, run_queue):
    sink, _server, p = hub
    smtpd = start_smtpd()
    raw = html_message(From='"张三 Sales" <sales@client.example>', To='"李四" <to@example.com>',
                       Cc="cc@example.com", Bcc="secret-bcc@example.com", Subject="HTML 邮件 with CC/BCC")

    with connect(smtpd) as conn:
        # AUTH is not offered before TLS...
        assert "auth" not in conn.esmtp_features
        assert "starttls" in conn.esmtp_features
        conn.starttls(context=client_tls(tls_files))
        conn.ehlo()
        # ... and is after, with both mechanisms.
        assert {"PLAIN", "LOGIN"} <= set(conn.esmtp_features["auth"].split())
        code, resp = auth_login(conn, p.creds["appid"], p.secret)
        assert code == 235, resp
        code, reply = submit(conn, "bounce@client.example",
                             ["to@example.com", "cc@example.com", "secret-bcc@example.com"], raw)
        assert code == 250, reply
        log_id = queued_id(reply)
        # The reply is sent only after the row is committed: it is there right now.
        row = SendLog.objects.get(pk=log_id)

    assert SendLog.objects.count() == 1
    assert OrmQ.objects.count() == 1
    assert row.source == SendLog.Source.SMTP
    assert row.app_id == p.app.id
    assert row.status == SendLog.Status.QUEUED
    assert row.rcpt_to == "to@example.com, cc@example.com, secret-bcc@example.com"
    assert row.subject == "HTML 邮件 with CC/BCC"
    assert "<b>HTML</b>" in row.html_body
    assert "plain text" in row.text_body
    assert row.from_name == "张三 Sales"
    assert row.from_email == SENDER
    assert "cc@example.com" in row.cc
    assert row.client_ip == "127.0.0.1"
    assert bytes(row.raw_message) == raw
    assert sink.messages == []  # nothing goes out before a worker runs

    assert run_queue() == 1
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT, row.error
    [received] = sink.messages
    # The envelope: the server's own sender, every recipient including the BCC one.
    assert received.mail_from == SENDER
    assert sorted(received.rcpt_tos) == ["cc@example.com", "secret-bcc@example.com", "to@example.com"]
    msg = received.message
    assert msg["Bcc"] is None
    assert b"secret-bcc" not in received.content
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["cc@example.com"]
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [("李四", "to@example.com")]
    assert msg["Subject"] == "HTML 邮件 with CC/BCC"
    assert msg["X-SMTPHub-Log-ID"] == str(row.id)
    assert msg.get_body(("html",)).get_content().strip() == "<p>你好，<b>HTML</b> 邮件</p>"
    # From policy: another domain's From becomes the server's sender, the display name kept,
    # the original address in Reply-To.
    [sender] = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("张三 Sales", SENDER)
    assert [a.addr_spec for a in msg["Reply-To"].addresses] == ["sales@client.example"]


def test_from_equal_to_the_servers_sender_is_kept(start_smtpd, tls_files, hub, run_queue):
    sink, _server, p = hub
    smtpd = start_smtpd()
    raw = html_message(From=f'"Hub Sender" <{SENDER}>', To="to@example.com", Subject="own sender")
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        code, reply = submit(conn, SENDER, ["to@example.com"], raw)
        assert code == 250, reply

    assert run_queue() == 1
    msg = sink.messages[0].message
    [sender] = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Hub Sender", SENDER)
    assert msg["Reply-To"] is None  # nothing was moved


def test_clients_own_reply_to_is_kept_when_from_is_rewritten(start_smtpd, tls_files, hub, run_queue):
    sink, _server, p = hub
    smtpd = start_smtpd()
    raw = html_message(From="Shop <shop@client.example>", Reply_To="support@client.example",
                       To="to@example.com", Subject="reply-to given")
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert submit(conn, "shop@client.example", ["to@example.com"], raw)[0] == 250

    assert run_queue() == 1
    msg = sink.messages[0].message
    assert [(a.display_name, a.addr_spec) for a in msg["From"].addresses] == [("Shop", SENDER)]
    assert [a.addr_spec for a in msg["Reply-To"].addresses] == ["support@client.example"]


def test_client_mime_is_relayed_intact(start_smtpd, tls_files, hub, run_queue):
    """Multipart with a binary attachment and a text/calendar part: the body the sink gets
    is the body the client sent, byte for byte (only headers are touched)."""
    sink, _server, p = hub
    smtpd = start_smtpd()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, "to@example.com", "invite with file"
    # Lines starting with a dot: SMTP dot-stuffing must be undone exactly, both hops.
    msg.set_content("see attached\n.hidden line\n.\n..two dots\n")
    msg.add_alternative("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n", subtype="calendar",
                        params={"method": "REQUEST"})
    blob = bytes(range(256)) * 40
    msg.add_attachment(blob, maintype="application", subtype="octet-stream", filename="blob.bin")
    raw = msg.as_bytes(policy=policy.SMTP)

    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert submit(conn, SENDER, ["to@example.com"], raw)[0] == 250
    assert SendLog.objects.get().attachment_count == 1

    assert run_queue() == 1
    received = sink.messages[0]
    assert body_of(received.content) == body_of(raw)
    [attachment] = received.message.iter_attachments()
    assert attachment.get_filename() == "blob.bin"
    assert attachment.get_content() == blob
    calendar = next(part for part in received.message.walk() if part.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "REQUEST"


# --- swaks: AUTH PLAIN over STARTTLS and over implicit TLS --------------------------------------

def swaks(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("swaks")
    if exe is None:
        pytest.fail("swaks is not installed (Debian package `swaks`: apt-get install -y swaks)")
    return subprocess.run([exe, "--timeout", "10", "--ehlo", "client.test", *args], check=False, capture_output=True,
                          timeout=60, text=True)


@pytest.mark.parametrize("mode", ["starttls", "implicit_tls"])
def test_swaks_auth_plain(start_smtpd, hub, run_queue, mode):
    sink, _server, p = hub
    smtpd = start_smtpd(implicit_tls=(mode == "implicit_tls"))
    where = (["--port", str(smtpd.port), "--tls"] if mode == "starttls"
             else ["--port", str(smtpd.tls_port), "--tlsc"])
    result = swaks("--server", "127.0.0.1", *where, "--auth", "PLAIN",
                   "--auth-user", p.creds["appid"], "--auth-password", p.secret,
                   "--from", "app@client.example", "--to", "reader@example.com",
                   "--header", f"Subject: via swaks {mode}", "--body", "hello from swaks")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "AUTH PLAIN" in result.stdout
    assert "235 " in result.stdout
    row = SendLog.objects.get(pk=queued_id(result.stdout))
    assert row.source == SendLog.Source.SMTP
    assert row.subject == f"via swaks {mode}"

    assert run_queue() == 1
    [received] = sink.messages
    assert received.mail_from == SENDER
    assert received.rcpt_tos == ["reader@example.com"]
    assert received.message["Subject"] == f"via swaks {mode}"
    assert received.message["From"].addresses[0].addr_spec == SENDER
    assert received.message["Reply-To"].addresses[0].addr_spec == "app@client.example"


def test_swaks_wrong_password_fails(start_smtpd, hub):
    sink, _server, p = hub
    smtpd = start_smtpd()
    result = swaks("--server", "127.0.0.1", "--port", str(smtpd.port), "--tls", "--auth", "PLAIN",
                   "--auth-user", p.creds["appid"], "--auth-password", "not-the-secret",
                   "--from", "app@client.example", "--to", "reader@example.com")
    assert result.returncode != 0
    assert "535 " in result.stdout
    assert_nothing_written(sink)


# --- AUTH refusals --------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["wrong_password", "unknown_appid", "disabled_app"])
def test_auth_refused(start_smtpd, tls_files, hub, who):
    sink, _server, p = hub
    smtpd = start_smtpd()
    user, password = p.creds["appid"], p.secret
    if who == "wrong_password":
        password = "wrong-" + p.secret
    elif who == "unknown_appid":
        user = "999999"
    else:
        p.app.enabled = False
        p.app.save()

    with connect(smtpd, tls_files) as conn:
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            auth_login(conn, user, password)
        assert caught.value.smtp_code == 535
        if who == "disabled_app":
            assert b"disabled" in caught.value.smtp_error.lower()
        # PLAIN is refused the same way.
        code, resp = auth_plain_cmd(conn, user, password)
        assert code == 535, resp
        # Without a login no mail is taken.
        code, resp = conn.mail("app@client.example")
        assert code == 530, resp
    assert_nothing_written(sink)


def test_auth_on_plaintext_connection_is_refused(start_smtpd, hub):
    """STARTTLS is available but the client did not use it: AUTH is not offered and a
    blind AUTH is refused (538 encryption required), so the secret never crosses in clear."""
    sink, _server, p = hub
    smtpd = start_smtpd()
    with connect(smtpd) as conn:
        assert "auth" not in conn.esmtp_features
        code, resp = auth_plain_cmd(conn, p.creds["appid"], p.secret)
        assert code == 538 or (500 <= code < 600 and resp.startswith(b"5.7.")), (code, resp)
        code, resp = conn.mail("app@client.example")
        assert code == 530, resp
    assert_nothing_written(sink)


def test_auth_without_tls_needs_the_explicit_loopback_allowance(start_smtpd, hub):
    sink, _server, p = hub
    # No certificate at all and no allowance: AUTH cannot happen.
    refused = start_smtpd(tls=False)
    with connect(refused) as conn:
        assert "starttls" not in conn.esmtp_features
        code, resp = auth_plain_cmd(conn, p.creds["appid"], p.secret)
        assert code == 538 or (500 <= code < 600 and resp.startswith(b"5.7.")), (code, resp)
    assert_nothing_written(sink)

    # Allowed explicitly, listening on 127.0.0.1: AUTH in clear works for development.
    allowed = start_smtpd(tls=False, HUB_SMTPD_ALLOW_PLAINTEXT_AUTH="1")
    with connect(allowed) as conn:
        assert "auth" in conn.esmtp_features
        code, resp = auth_plain_cmd(conn, p.creds["appid"], p.secret)
        assert code == 235, resp
        code, reply = submit(conn, SENDER, ["to@example.com"],
                             html_message(From=SENDER, To="to@example.com", Subject="plain dev"))
        assert code == 250, reply
    assert SendLog.objects.get(pk=queued_id(reply)).subject == "plain dev"


@pytest.mark.parametrize("host,allowed", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                          ("0.0.0.0", False), ("192.0.2.10", False), ("::", False)])
def test_plaintext_auth_allowance_is_loopback_only(host, allowed):
    """The allowance is ignored unless the listener is loopback only (a unit check: these
    addresses are not ones a test may bind)."""
    from hub.smtpd import plaintext_auth_allowed

    with override_settings(HUB_SMTPD_ALLOW_PLAINTEXT_AUTH=True):
        assert plaintext_auth_allowed(host) is allowed
    with override_settings(HUB_SMTPD_ALLOW_PLAINTEXT_AUTH=False):
        assert plaintext_auth_allowed(host) is False


# --- message refusals: SMTP replies, nothing written -------------------------------------------

def test_oversize_message_gets_552(start_smtpd, tls_files, hub):
    sink, _server, p = hub
    smtpd = start_smtpd(HUB_SMTPD_MAX_MESSAGE_BYTES="4096")
    # Many short lines: over the size limit without tripping the line-length limit.
    big = EmailMessage()
    big["From"], big["To"], big["Subject"] = SENDER, "to@example.com", "too big"
    big.set_content(("A" * 70 + "\n") * 100)
    big = big.as_bytes(policy=policy.SMTP)
    assert len(big) > 4096
    with connect(smtpd, tls_files) as conn:
        assert conn.esmtp_features["size"] == "4096"
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        # Declared size over the limit: refused at MAIL.
        code, resp = conn.mail(SENDER, ["SIZE=100000"])
        assert code == 552, resp
        conn.rset()
        # Not declared: refused after DATA.
        assert conn.mail(SENDER)[0] == 250
        assert conn.rcpt("to@example.com")[0] == 250
        code, resp = conn.data(big)
        assert code == 552, resp
    assert_nothing_written(sink)


def test_suppressed_recipient_gets_550_at_rcpt(start_smtpd, tls_files, hub):
    sink, _server, p = hub
    Suppression.objects.create(app=p.app, email="gone@example.com", reason="hard bounce")
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert conn.mail(SENDER)[0] == 250
        code, resp = conn.rcpt("Gone@Example.com")  # addresses compare case-insensitively
        assert code == 550, resp
        # With no recipient left there is nothing to take.
        code, resp = conn.docmd("DATA")
        assert code == 503, resp
    assert_nothing_written(sink)


def test_suppressed_recipient_is_dropped_from_a_mixed_envelope(start_smtpd, tls_files, hub, run_queue):
    sink, _server, p = hub
    Suppression.objects.create(app=p.app, email="gone@example.com", reason="hard bounce")
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert conn.mail(SENDER)[0] == 250
        assert conn.rcpt("ok@example.com")[0] == 250
        assert conn.rcpt("gone@example.com")[0] == 550
        code, reply = conn.data(html_message(From=SENDER, To="ok@example.com, gone@example.com", Subject="m"))
        assert code == 250, reply
    assert SendLog.objects.get().rcpt_to == "ok@example.com"
    assert run_queue() == 1
    assert sink.messages[0].rcpt_tos == ["ok@example.com"]


def test_too_many_recipients_gets_452(start_smtpd, tls_files, hub):
    sink, _server, p = hub
    smtpd = start_smtpd(HUB_MAX_RECIPIENTS="2")
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert conn.mail(SENDER)[0] == 250
        assert conn.rcpt("one@example.com")[0] == 250
        assert conn.rcpt("two@example.com")[0] == 250
        code, resp = conn.rcpt("three@example.com")
        assert code == 452, resp
        conn.rset()
    assert_nothing_written(sink)


@pytest.mark.parametrize("rcpt", ["not-an-address", "用户@example.com", "a@b@example.com"])
def test_invalid_recipient_is_refused(start_smtpd, tls_files, hub, rcpt):
    sink, _server, p = hub
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert conn.mail(SENDER)[0] == 250
        conn.command_encoding = "utf-8"  # smtplib would refuse to send the non-ASCII one
        code, resp = conn.docmd("RCPT", f"TO:<{rcpt}>")
        assert 500 <= code < 600, resp
    assert_nothing_written(sink)


def test_rate_limited_app_gets_451_at_mail(start_smtpd, tls_files, hub):
    sink, _server, p = hub
    p.app.rate_limit_per_minute = 1
    p.app.save()
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert conn.mail(SENDER)[0] == 250
        conn.rset()
        code, resp = conn.mail(SENDER)
        # Minute windows: a test that straddles a minute boundary gets a fresh window.
        if code == 250:
            conn.rset()
            code, resp = conn.mail(SENDER)
        assert code == 451, resp
    assert_nothing_written(sink)


def test_app_disabled_during_an_open_session_is_refused(start_smtpd, tls_files, hub):
    """Clients keep SMTP connections open for hours (connection reuse). Disabling the app
    in the admin must stop it sending, not only its next login: the API checks on every
    request, so the SMTP server must refuse the next transaction with an SMTP error."""
    sink, _server, p = hub
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        type(p.app).objects.filter(pk=p.app.pk).update(enabled=False)
        code, resp = conn.mail(SENDER)
        if code == 250:  # refusing at RCPT or DATA would do as well
            code, resp = conn.rcpt("to@example.com")
        if code == 250:
            code, resp = conn.data(html_message(From=SENDER, To="to@example.com", Subject="after disable"))
        assert 400 <= code < 600, (code, resp)
    assert_nothing_written(sink)


def test_app_without_upstream_server_gets_451_at_mail(start_smtpd, tls_files, make_app):
    p = make_app(name="no servers")
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        code, resp = conn.mail(SENDER)
        assert code == 451, resp
    assert_nothing_written()


# --- graceful shutdown --------------------------------------------------------------------------

def _open_session(smtpd: Smtpd, tls_files, p) -> smtplib.SMTP:
    """Connected, logged in, MAIL and RCPT given: a session in the middle of a message."""
    conn = connect(smtpd, tls_files)
    assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
    assert conn.mail(SENDER)[0] == 250
    assert conn.rcpt("to@example.com")[0] == 250
    return conn


def _wait_until_refused(port: int, proc: subprocess.Popen) -> bool:
    """Connect until the listener is gone; returns whether the process was still running
    at that moment (the open session keeps it in its grace period)."""
    deadline = time.monotonic() + GRACE + STOP_DEADLINE
    while time.monotonic() < deadline:
        alive = proc.poll() is None
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except (ConnectionRefusedError, ConnectionResetError):
            # Reset: our probe was still in the accept queue when the listener closed.
            return alive
        time.sleep(0.02)
    pytest.fail("the listener still accepts connections after SIGTERM")


def test_sigterm_with_an_idle_session_stops_within_the_grace(start_smtpd, tls_files, hub):
    sink, _server, p = hub
    smtpd = start_smtpd()
    conn = _open_session(smtpd, tls_files, p)
    try:
        smtpd.proc.send_signal(signal.SIGTERM)
        # No new connections from the moment the signal is handled, while the old one lives.
        assert _wait_until_refused(smtpd.port, smtpd.proc) is True
        # The session never finishes: the server ends it when the grace period is over.
        returncode = smtpd.proc.wait(timeout=GRACE + STOP_DEADLINE)
        assert returncode == 0, smtpd.log()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            conn.noop()
    finally:
        conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", smtpd.port), timeout=2).close()
    assert "smtpd stopped" in smtpd.log()
    assert_nothing_written(sink)


def test_sigterm_lets_an_open_session_finish_its_message(start_smtpd, tls_files, hub, run_queue):
    sink, _server, p = hub
    smtpd = start_smtpd()
    conn = _open_session(smtpd, tls_files, p)
    try:
        smtpd.proc.send_signal(signal.SIGTERM)
        assert _wait_until_refused(smtpd.port, smtpd.proc) is True
        # In the grace period the message already under way is still taken.
        code, resp = conn.data(html_message(From=SENDER, To="to@example.com", Subject="during shutdown"))
        assert code == 250, resp
        row = SendLog.objects.get(pk=queued_id(resp.decode()))
        conn.quit()
    finally:
        conn.close()
    assert smtpd.proc.wait(timeout=GRACE + STOP_DEADLINE) == 0, smtpd.log()
    assert row.subject == "during shutdown"
    assert run_queue() == 1
    assert sink.messages[0].message["Subject"] == "during shutdown"
