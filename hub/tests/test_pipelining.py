"""SMTP PIPELINING (RFC 2920) in hub.delivery.transport.SmtpSession.send: with a server that
offers it, MAIL, every RCPT and DATA leave in one write and each recipient's reply is still
recorded; with a server that does not, one command per write as before."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from conftest import SinkHandler, SmtpSink, free_port
from hub.delivery.outbox import deliver_batch
from hub.models import SendLog, Suppression
from hub.sending import SendRequest, accept

S = SendLog.Status


@dataclass
class PipeliningHandler(SinkHandler):
    """A sink that offers PIPELINING in its EHLO reply (aiosmtpd reads pipelined commands
    line by line either way; only the offer differs)."""

    offer: bool = True
    ehlo_count: list = field(default_factory=list)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.offer:
            responses.insert(-1, "250-PIPELINING")
        return responses


@pytest.fixture
def sink_factory():
    started: list[Controller] = []

    def start(**handler_fields):
        handler = PipeliningHandler(**handler_fields)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        return SmtpSink("127.0.0.1", port, handler, controller), handler

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def writes(monkeypatch) -> list[bytes]:
    """Every write smtplib makes on a connection, as it made it."""
    seen: list[bytes] = []
    real_send = smtplib.SMTP.send

    def send(self, s):
        seen.append(s if isinstance(s, bytes) else s.encode("ascii"))
        return real_send(self, s)

    monkeypatch.setattr(smtplib.SMTP, "send", send)
    return seen


def queue(app, to: str) -> SendLog:
    return accept(app, SendRequest(to=to, subject="pipelined", message="<p>hi</p>"))


def commands(chunk: bytes) -> list[str]:
    return [line.split(b":")[0].split(b" ")[0].decode().lower() for line in chunk.split(b"\r\n") if line]


def test_mail_rcpts_and_data_go_in_one_write_and_a_refused_rcpt_is_recorded(sink_factory, writes, make_server,
                                                                             make_app):
    controller, handler = sink_factory(refuse={"bad@example.com": "550 5.1.1 No such user"})
    app = make_app(make_server(controller)).app
    row = queue(app, "a@example.com, bad@example.com, c@example.com")
    writes.clear()
    deliver_batch([row.id])

    row.refresh_from_db()
    assert row.status == S.SENT
    assert row.refused_recipients == {"bad@example.com": [550, "5.1.1 No such user"]}
    (received,) = handler.messages
    assert received.rcpt_tos == ["a@example.com", "c@example.com"]
    envelope = [w for w in writes if w.lower().startswith(b"mail from")]
    assert len(envelope) == 1
    assert commands(envelope[0]) == ["mail", "rcpt", "rcpt", "rcpt", "data"]
    # A hard bounce in a pipelined group is suppressed like any other.
    assert Suppression.objects.filter(app=app, email="bad@example.com").exists()


def test_every_rcpt_refused_in_a_pipelined_group_sends_no_message(sink_factory, writes, make_server, make_app,
                                                                   settings):
    settings.HUB_RETRY_SCHEDULE = [60]
    controller, handler = sink_factory(refuse={"x@example.com": "450 4.2.0 Try later",
                                               "y@example.com": "450 4.2.0 Try later"})
    app = make_app(make_server(controller)).app
    first = queue(app, "x@example.com, y@example.com")
    second = queue(app, "z@example.com")
    deliver_batch([first.id, second.id])

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.error) == (S.RETRYING, "all recipients refused")
    assert set(first.refused_recipients) == {"x@example.com", "y@example.com"}
    # The session was left in step: the next message on the same connection goes out.
    assert second.status == S.SENT
    assert [m.rcpt_tos for m in handler.messages] == [["z@example.com"]]


def test_a_server_without_pipelining_gets_one_command_per_write(sink_factory, writes, make_server, make_app):
    controller, handler = sink_factory(offer=False, refuse={"bad@example.com": "550 5.1.1 No such user"})
    app = make_app(make_server(controller)).app
    row = queue(app, "a@example.com, bad@example.com")
    writes.clear()
    deliver_batch([row.id])

    row.refresh_from_db()
    assert row.status == S.SENT
    assert row.refused_recipients == {"bad@example.com": [550, "5.1.1 No such user"]}
    envelope = [commands(w) for w in writes if w[:4].lower() in (b"mail", b"rcpt", b"data")]
    assert envelope == [["mail"], ["rcpt"], ["rcpt"], ["data"]]
    assert [m.rcpt_tos for m in handler.messages] == [["a@example.com"]]


def test_pipelining_can_be_switched_off(sink_factory, writes, make_server, make_app, settings):
    settings.HUB_SMTP_PIPELINING = False
    controller, handler = sink_factory()
    app = make_app(make_server(controller)).app
    row = queue(app, "a@example.com")
    writes.clear()
    deliver_batch([row.id])
    assert [commands(w) for w in writes if w[:4].lower() in (b"mail", b"rcpt", b"data")] == [["mail"], ["rcpt"],
                                                                                             ["data"]]
    assert len(handler.messages) == 1
