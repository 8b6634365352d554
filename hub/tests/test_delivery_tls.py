"""Delivery over each connection security mode, against real aiosmtpd servers on loopback:
plain SMTP, STARTTLS + AUTH and implicit TLS + AUTH; certificate verification; refused logins."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import SinkHandler, SmtpSink, free_port
from hub.delivery.outbox import deliver_batch
from hub.models import SendLog
from hub.sending import SendRequest, accept

SINK_REPLY = "2.0.0 Ok: queued as TEST"  # what conftest's SinkHandler answers to DATA


def queue_one(app, to: str = "rcpt@example.com") -> SendLog:
    """A row exactly as the API makes it (validated, with its queued task)."""
    return accept(app, SendRequest(to=to, subject="Delivery test", message="<p>Hello</p>"))


def assert_sent(row: SendLog, server, sink: SmtpSink) -> None:
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT, row.error
    assert row.smtp_code == 250
    assert row.smtp_reply == SINK_REPLY
    assert row.error == ""
    assert row.attempts == 1
    assert row.sent_at is not None
    assert row.smtp_server_id == server.id
    assert len(sink.messages) == 1
    assert sink.messages[0].rcpt_tos == ["rcpt@example.com"]
    assert sink.messages[0].message["X-SMTPHub-Log-ID"] == str(row.id)


def assert_not_delivered(row: SendLog, sink: SmtpSink) -> None:
    """Whatever the retry policy decides, a failed attempt is never `sent`, never stuck in
    `sending`, and nothing reached the server."""
    row.refresh_from_db()
    assert row.status not in (SendLog.Status.SENT, SendLog.Status.SENDING)
    assert row.sent_at is None
    assert row.attempts == 1
    assert sink.messages == []


# --- each security mode -------------------------------------------------------------------

def test_plain_without_auth(smtp_sink_factory, make_server, make_app):
    sink = smtp_sink_factory("plain")
    server = make_server(sink, security="none")
    row = queue_one(make_app(server).app)

    deliver_batch([row.id])

    assert_sent(row, server, sink)


def test_plain_with_auth(smtp_sink_factory, make_server, make_app):
    # aiosmtpd allows AUTH without TLS when auth_require_tls is off (conftest's plain mode):
    # some internal relays work like that, so the hub must log in there too.
    sink = smtp_sink_factory("plain", username="relay-user", password="relay-pass")
    server = make_server(sink, security="none")
    row = queue_one(make_app(server).app)

    deliver_batch([row.id])

    assert_sent(row, server, sink)


def test_starttls_with_auth(smtp_sink_factory, make_server, make_app):
    # The sink requires STARTTLS before AUTH and before MAIL: a message arriving proves
    # the hub upgraded the connection and logged in.
    sink = smtp_sink_factory("starttls", username="user@example.com", password="s3cret")
    server = make_server(sink, security="starttls", verify_tls=False)
    row = queue_one(make_app(server).app)

    deliver_batch([row.id])

    assert_sent(row, server, sink)


def test_non_ascii_password(smtp_sink_factory, make_server, make_app):
    # SASL PLAIN carries UTF-8 (RFC 4616), and the hub stores any password an admin types.
    # A password outside ASCII must log in, or at the very least fail as a recorded,
    # readable outcome, never as an exception escaping the delivery task.
    sink = smtp_sink_factory("starttls", username="user@example.com", password="密码-pässwörd")
    server = make_server(sink, security="starttls", verify_tls=False)
    row = queue_one(make_app(server).app)

    deliver_batch([row.id])

    assert_sent(row, server, sink)


def test_implicit_tls_with_auth(smtp_sink_factory, make_server, make_app):
    sink = smtp_sink_factory("ssl", username="user@example.com", password="s3cret")
    server = make_server(sink, security="ssl", verify_tls=False)
    row = queue_one(make_app(server).app)

    deliver_batch([row.id])

    assert_sent(row, server, sink)


# --- which AUTH mechanism ------------------------------------------------------------------

@dataclass
class RecordingSink:
    sink: SmtpSink
    mechanisms: list[str] = field(default_factory=list)


@pytest.fixture
def auth_sink_factory(tls_files):
    """Like conftest's smtp_sink_factory, but records which AUTH mechanism the client used
    and can stop offering some (aiosmtpd offers PLAIN and LOGIN; smtplib prefers PLAIN, so
    the only honest way to drive LOGIN is a server that offers nothing else)."""
    started: list[Controller] = []

    def start(mode: str, exclude: list[str] | None = None) -> RecordingSink:
        handler = SinkHandler()
        recorded: list[str] = []

        def authenticator(server, session, envelope, mechanism, auth_data):
            recorded.append(mechanism)
            ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"u", b"p")
            return AuthResult(success=ok, handled=False)

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*tls_files)
        kwargs: dict = {"authenticator": authenticator, "auth_required": True,
                        "auth_exclude_mechanism": exclude or []}
        if mode == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
        else:
            kwargs.update(ssl_context=ctx, auth_require_tls=False)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        started.append(controller)
        return RecordingSink(SmtpSink("127.0.0.1", port, handler, controller, "u", "p"), recorded)

    yield start
    for controller in started:
        controller.stop()


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_auth_plain_is_used_when_offered(auth_sink_factory, make_server, make_app, mode):
    rec = auth_sink_factory(mode)
    server = make_server(rec.sink, security=mode, verify_tls=False)
    row = queue_one(make_app(server).app)

    deliver_batch([row.id])

    assert_sent(row, server, rec.sink)
    assert rec.mechanisms == ["PLAIN"]


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_auth_login_when_it_is_the_only_mechanism(auth_sink_factory, make_server, make_app, mode):
    rec = auth_sink_factory(mode, exclude=["PLAIN"])
    server = make_server(rec.sink, security=mode, verify_tls=False)
    row = queue_one(make_app(server).app)

    deliver_batch([row.id])

    assert_sent(row, server, rec.sink)
    assert rec.mechanisms == ["LOGIN"]


# --- certificate verification ---------------------------------------------------------------

@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_self_signed_certificate_is_refused_by_default(smtp_sink_factory, make_server, make_app, mode):
    sink = smtp_sink_factory(mode, username="u", password="p")
    # verify_tls is on unless an admin turns it off; the sink's certificate is self-signed.
    server = make_server(sink, security=mode)
    assert server.verify_tls is True
    row = queue_one(make_app(server).app)

    deliver_batch([row.id])

    assert_not_delivered(row, sink)
    assert "certificate" in row.error.lower(), row.error


# --- refused login ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["plain", "starttls", "ssl"])
def test_wrong_password_records_535(smtp_sink_factory, make_server, make_app, mode):
    sink = smtp_sink_factory(mode, username="u", password="right")
    server = make_server(sink, security={"plain": "none"}.get(mode, mode), verify_tls=False, password="Wr0ng-pa55")
    row = queue_one(make_app(server).app)

    deliver_batch([row.id])

    assert_not_delivered(row, sink)
    assert row.smtp_code == 535
    # The server's own words, so an admin can tell a bad password from anything else.
    assert row.smtp_reply == "5.7.8 Authentication credentials invalid"
    assert "535" in row.error
    # The password is never written into the log, right or wrong.
    assert "Wr0ng-pa55" not in row.error and "Wr0ng-pa55" not in row.smtp_reply
