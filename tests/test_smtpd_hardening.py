"""The SMTP submission server under the black-box probe of issue 17, with a real `manage.py
smtpd` and a sink: From display names decoded to line breaks, NUL or `:` (item 4), the
hub's own headers forged by the client (item 7), a secret rotated during a session (item 6),
failed AUTH limits (item 5), `AUTH PLAIN AAA=` (item 11), and what the server logs."""

from __future__ import annotations

import base64
import smtplib
import time

import pytest

from hub.models import App, SendLog
from tests import test_smtpd
from tests.test_smtpd import SENDER, assert_nothing_written, auth_login, auth_plain_cmd, client_tls, connect, queued_id

# The running-server fixtures of test_smtpd.py, shared rather than copied.
start_smtpd = test_smtpd.start_smtpd
hub = test_smtpd.hub

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def raw_message(from_header: str, *extra: str) -> bytes:
    head = [f"From: {from_header}", "To: to@example.com", "Subject: probe", *extra,
            "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(head) + "\r\n\r\nbody\r\n").encode("utf-8")


def send_raw(smtpd, tls_files, p, raw: bytes) -> tuple[int, str]:
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert conn.mail("me@example.com")[0] == 250
        assert conn.rcpt("to@example.com")[0] == 250
        code, resp = conn.data(raw)
        return code, resp.decode()


# --- item 4: the From rewrite -----------------------------------------------------------------

@pytest.mark.parametrize("from_header,name", [
    ("=?utf-8?q?Evil=0D=0ABcc=3A_inj=40evil=2Etest?= <me@example.com>", "Evil Bcc: inj@evil.test"),
    ("=?utf-8?q?Evil=00Name?= <me@example.com>", "Evil Name"),
    ("=?utf-8?q?Sales:_yes?= <me@example.com>", "Sales: yes"),
    ('"Support: 24/7" <me@example.com>', "Support: 24/7"),
    ("=?utf-8?b?5byg5LiJ?= <me@example.com>", "张三"),
], ids=["encoded_crlf", "encoded_nul", "colon_in_encoded_word", "colon_quoted", "chinese"])
def test_from_display_names_are_sanitized_and_the_message_is_delivered(start_smtpd, tls_files, hub, run_queue,
                                                                       from_header, name):
    sink, _server, p = hub
    smtpd = start_smtpd()
    code, reply = send_raw(smtpd, tls_files, p, raw_message(from_header))
    assert code == 250, reply
    row = SendLog.objects.get(pk=queued_id(reply))
    assert "\r" not in row.from_name and "\n" not in row.from_name and "\x00" not in row.from_name

    assert run_queue() == 1
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT, row.error
    [received] = sink.messages
    assert b"\x00" not in received.content
    [sender] = received.message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (name, SENDER)
    assert received.message["Bcc"] is None
    assert [a.addr_spec for a in received.message["Reply-To"].addresses] == ["me@example.com"]
    assert received.rcpt_tos == ["to@example.com"]


@pytest.mark.parametrize("header", [b"From: Evil\x00Name <me@example.com>", b"Subject: a\x0bb"])
def test_raw_control_characters_in_a_header_are_refused_at_data(start_smtpd, tls_files, hub, header):
    """Accepted means deliverable: what the hub could not relay is refused with 554 at DATA."""
    sink, _server, p = hub
    smtpd = start_smtpd()
    raw = header + b"\r\nTo: to@example.com\r\n\r\nbody\r\n"
    code, reply = send_raw(smtpd, tls_files, p, raw)
    assert code == 554, reply
    assert_nothing_written(sink)


# --- item 7: the hub's own headers --------------------------------------------------------------

def test_client_cannot_forge_the_hubs_headers_nor_sender(start_smtpd, tls_files, hub, make_app, run_queue):
    sink, _server, p = hub
    other = make_app(name="someone else").app
    smtpd = start_smtpd()
    raw = raw_message(f"Shop <{SENDER}>", f"X-SMTPHub-App-ID: {other.id}", "X-SMTPHub-Log-ID: 424242",
                      "x-smtphub-anything: forged", "Sender: ceo@bank.example", "Return-Path: <x@evil.test>",
                      "Authentication-Results: mx.example; dkim=pass; spf=pass; dmarc=pass",
                      "Received: from client.test by mail.client.test", "Bcc: hidden@example.com")
    code, reply = send_raw(smtpd, tls_files, p, raw)
    assert code == 250, reply
    log_id = queued_id(reply)
    assert run_queue() == 1
    msg = sink.messages[0].message
    assert msg.get_all("X-SMTPHub-App-ID") == [str(p.app.id)]
    assert msg.get_all("X-SMTPHub-Log-ID") == [str(log_id)]
    assert msg["X-SMTPHub-Anything"] is None
    for dropped in ("Sender", "Return-Path", "Authentication-Results", "Bcc"):
        assert msg[dropped] is None, dropped
    assert msg["Received"] == "from client.test by mail.client.test"  # trace lines stay
    assert [(a.display_name, a.addr_spec) for a in msg["From"].addresses] == [("Shop", SENDER)]


# --- item 6: a rotated secret ends the session's sending ---------------------------------------

@pytest.mark.parametrize("grace,expected", [(0, 535), (3600, 250)])
def test_secret_rotated_during_a_session(start_smtpd, tls_files, hub, grace, expected):
    sink, _server, p = hub
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        app = App.objects.get(pk=p.app.pk)
        new_secret = app.rotate_secret(grace_seconds=grace)
        app.save()
        code, resp = conn.mail("me@example.com")
        assert code == expected, resp
        if expected == 535:
            assert b"rotated" in resp
            assert conn.rcpt("to@example.com")[0] == 503 or conn.mail("me@example.com")[0] == 530
            # ... and the new secret opens the same connection again.
            conn.user, conn.password = p.creds["appid"], new_secret
            assert conn.auth("PLAIN", conn.auth_plain)[0] == 235
            assert conn.mail("me@example.com")[0] == 250
    if expected == 535:
        assert_nothing_written(sink)


# --- item 11: AUTH replies -------------------------------------------------------------------

@pytest.mark.parametrize("token", ["AAA=", base64.b64encode(b"\0\0").decode(), base64.b64encode(b"\0\0x").decode(),
                                   base64.b64encode(b"\x00123\x00").decode(), "Og=="])
def test_empty_or_malformed_plain_credentials_get_an_auth_reply(start_smtpd, tls_files, hub, token):
    sink, _server, _p = hub
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        code, resp = conn.docmd("AUTH", "PLAIN " + token)
        assert code in (501, 535), resp  # an AUTH reply (RFC 4954), never a message refusal
        assert b"Message refused" not in resp
    assert_nothing_written(sink)


# --- item 5: failed AUTH --------------------------------------------------------------------------

def test_a_session_is_dropped_with_421_after_its_failed_auth_limit(start_smtpd, tls_files, hub):
    sink, _server, p = hub
    smtpd = start_smtpd(HUB_SMTPD_AUTH_FAILURES_PER_SESSION="3", HUB_SMTPD_AUTH_FAILURE_DELAY="0.3")
    conn = connect(smtpd, tls_files)
    assert auth_plain_cmd(conn, p.creds["appid"], "wrong-1")[0] == 535
    assert auth_plain_cmd(conn, p.creds["appid"], "wrong-2")[0] == 535
    started = time.monotonic()
    code, resp = auth_plain_cmd(conn, p.creds["appid"], "wrong-3")
    assert (code, resp) == (421, b"4.7.0 Too many failed logins, closing connection")
    assert time.monotonic() - started >= 0.3  # the delay is a floor, not a timing measurement
    with pytest.raises(smtplib.SMTPServerDisconnected):
        conn.noop()
    conn.close()
    assert_nothing_written(sink)


def test_an_ip_over_its_limit_is_refused_even_with_the_right_secret_and_others_not(start_smtpd, tls_files, hub):
    """Per IP, shared by all sessions (and with the HTTP API: the same counters). The AppID's
    own limit never refuses its correct secret (api/tests/test_login_limits.py)."""
    sink, _server, p = hub
    # A window with no boundary before 2033 (10**9 s): a boundary between the failures would
    # reset the count.
    smtpd = start_smtpd(HUB_LOGIN_FAILURES_PER_IP="4", HUB_SMTPD_AUTH_FAILURE_DELAY="0",
                        HUB_LOGIN_FAILURE_WINDOW=str(10**9))
    for _ in range(2):
        with connect(smtpd, tls_files) as conn:
            assert auth_plain_cmd(conn, p.creds["appid"], "wrong-a")[0] == 535
            assert auth_plain_cmd(conn, p.creds["appid"], "wrong-b")[0] == 535
    conn = connect(smtpd, tls_files)
    code, resp = auth_plain_cmd(conn, p.creds["appid"], p.secret)
    assert code == 421, resp
    conn.close()
    assert_nothing_written(sink)


# --- logs: one line per session and message at INFO, no aiosmtpd noise --------------------------

@pytest.mark.parametrize("implicit_tls", [False, True])
def test_log_has_one_line_per_session_and_message_and_no_spurious_warnings(start_smtpd, tls_files, hub,
                                                                            implicit_tls):
    _sink, _server, p = hub
    smtpd = start_smtpd(implicit_tls=implicit_tls)
    if implicit_tls:
        conn = smtplib.SMTP_SSL("127.0.0.1", smtpd.tls_port, local_hostname="client.test", timeout=10,
                                context=client_tls(tls_files))
        conn.ehlo()
    else:
        conn = connect(smtpd, tls_files)
    with conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert conn.mail("me@example.com")[0] == 250
        assert conn.rcpt("to@example.com")[0] == 250
        assert conn.data(raw_message(f"<{SENDER}>"))[0] == 250
    deadline = time.monotonic() + 10
    while "session from" not in smtpd.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = smtpd.log()
    assert "auth_require_tls" not in log
    assert "login_data is deprecated" not in log
    assert "Requiring AUTH while not requiring TLS" not in log
    assert ">> b'" not in log  # aiosmtpd's per-command lines are DEBUG now
    assert log.count("smtpd: queued ") == 1
    assert log.count("smtpd: session from") == 1
