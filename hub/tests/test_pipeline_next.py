"""hub.delivery.chain: a crew thread writes the next message's envelope behind the current
message's content (RFC 2920), so a message costs its session one round trip. Each row's
outcome is still its own; a server without PIPELINING, a refused recipient or message, and
a connection lost with an envelope ahead all leave every row accounted for, each sent once.
Threads need committed rows: this module runs with a transactional test database."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

import pytest
from aiosmtpd.controller import Controller

from conftest import SinkHandler, SmtpSink, free_port
from hub.delivery import outbox, slots, transport
from hub.delivery.chain import Ahead, Chain
from hub.delivery.crew import Crew
from hub.delivery.outbox import deliver_batch
from hub.delivery.transport import pool
from hub.models import DeliveryAttempt, SendLog, SmtpServer
from hub.sending import SendRequest, accept

pytestmark = pytest.mark.django_db(transaction=True)
S = SendLog.Status
AHEAD = b"\r\n.\r\nmail FROM:"  # a message's end, then the next one's MAIL, in one write


@dataclass
class Handler(SinkHandler):
    offer: bool = True
    reject_subject: str = ""  # DATA of a message with this subject is refused (554)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.offer:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server, session, envelope):
        if self.reject_subject and f"Subject: {self.reject_subject}".encode() in envelope.content:
            return "554 5.7.1 Message rejected"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def sink():
    started: list[Controller] = []

    def start(**fields) -> SmtpSink:
        handler = Handler(**fields)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        return SmtpSink("127.0.0.1", port, handler, controller)

    yield start
    pool.close_all()
    for controller in started:
        controller.stop()


@pytest.fixture(autouse=True)
def two_threads(settings):
    # Two threads for ten rows: rows wait in the crew's queue, where a chain finds them.
    settings.HUB_DELIVERY_THREADS = 2


def queue(app, n: int, **fields) -> list[SendLog]:
    return [accept(app, SendRequest(to=fields.get("to", f"u{i}@example.com"), subject=f"m{i}",
                                    message="<p>hi</p>")) for i in range(n)]


def subjects(sink: SmtpSink) -> list[str]:
    return sorted(m.message["Subject"] for m in sink.messages)


def test_the_next_envelope_leaves_with_the_content_and_each_row_is_recorded(sink, writes, make_server, make_app):
    server = sink()
    app = make_app(make_server(server)).app
    rows = queue(app, 10)
    deliver_batch([r.id for r in rows])

    assert sum(AHEAD in w for w in writes) >= 1
    # Every MAIL went out once: at the start of a write, or behind a message's content.
    assert sum(w.lower().startswith(b"mail from") for w in writes) + sum(AHEAD in w for w in writes) == 10
    assert sorted(SendLog.objects.values_list("status", "attempts")) == [(S.SENT, 1)] * 10
    assert DeliveryAttempt.objects.filter(result=DeliveryAttempt.Result.SENT).count() == 10
    assert subjects(server) == sorted(f"m{i}" for i in range(10))  # each once


def test_refusals_inside_a_chain_are_each_rows_own(sink, writes, make_server, make_app, settings):
    settings.HUB_RETRY_SCHEDULE = [60]
    server = sink(reject_subject="m3", refuse={"bad@example.com": "550 5.1.1 No such user"})
    app = make_app(make_server(server)).app
    rows = queue(app, 8)
    bad = accept(app, SendRequest(to="bad@example.com", subject="m8", message="<p>hi</p>"))
    deliver_batch([r.id for r in rows] + [bad.id])

    assert sum(AHEAD in w for w in writes) >= 1
    by_subject = {r.subject: r for r in SendLog.objects.all()}
    assert (by_subject["m3"].status, by_subject["m3"].smtp_code) == (S.FAILED, 554)
    assert by_subject["m8"].status == S.FAILED
    assert by_subject["m8"].refused_recipients == {"bad@example.com": [550, "5.1.1 No such user"]}
    assert {r.status for s, r in by_subject.items() if s not in ("m3", "m8")} == {S.SENT}
    assert subjects(server) == sorted(f"m{i}" for i in range(8) if i != 3)


def test_a_server_without_pipelining_gets_no_envelope_ahead(sink, writes, make_server, make_app):
    server = sink(offer=False)
    app = make_app(make_server(server)).app
    rows = queue(app, 6)
    deliver_batch([r.id for r in rows])
    assert not any(AHEAD in w for w in writes)
    assert sorted(SendLog.objects.values_list("status", flat=True)) == [S.SENT] * 6
    assert subjects(server) == sorted(f"m{i}" for i in range(6))


def test_it_can_be_switched_off(sink, writes, make_server, make_app, settings):
    settings.HUB_SMTP_PIPELINE_NEXT = False
    server = sink()
    app = make_app(make_server(server)).app
    deliver_batch([r.id for r in queue(app, 6)])
    assert not any(AHEAD in w for w in writes)
    assert len(server.messages) == 6


def test_a_connection_lost_with_an_envelope_ahead(sink, make_server, make_app, monkeypatch, settings):
    """The first write that carries an envelope ahead is the last on its connection: the
    message whose content it ended was on the wire (retried: it may repeat, as any message
    on the wire at a loss), the one whose envelope followed was not (delivered once, on a
    new connection). Nothing stays `sending`, no connection slot stays taken."""
    settings.HUB_RETRY_SCHEDULE = [60]
    real_send_data = transport.SmtpSession._send_data
    cut: list[bool] = []

    def send_data(conn, data, then=None):
        if then is not None and not cut:
            cut.append(True)
            conn.close()
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return real_send_data(conn, data, then)

    monkeypatch.setattr(transport.SmtpSession, "_send_data", staticmethod(send_data))
    server = sink()
    smtp = make_server(server)
    app = make_app(smtp).app
    rows = queue(app, 10)
    deliver_batch([r.id for r in rows])

    assert cut
    statuses = sorted(SendLog.objects.values_list("status", flat=True))
    assert statuses.count(S.SENT) == 9 and statuses.count(S.RETRYING) == 1
    lost = SendLog.objects.get(status=S.RETRYING)
    assert lost.attempts == 1 and "disconnected" in lost.error
    sent = sorted(SendLog.objects.filter(status=S.SENT).values_list("subject", flat=True))
    assert subjects(server) == sent  # the one whose envelope was ahead: delivered, once
    # Each slot held is an open session's: the lost one's was freed.
    assert slots.open_connections([smtp.pk]).get(smtp.pk, 0) == len(pool.sessions.get(smtp.pk, ()))


def test_campaign_mail_follows_neither_a_transactional_row_nor_a_waiting_one(monkeypatch):
    seen: list = []
    chain = Chain(take=lambda wanted: seen.append(wanted), give_back=lambda row: None)
    server = SmtpServer(pk=1, host="h")

    class Session:
        slot_lost = False
        key = 1

        @staticmethod
        def worn_out() -> bool:
            return False

    transactional, campaign = SendLog(priority=0), SendLog(priority=1)
    for row in (transactional, campaign):
        assert chain.follower(row, server, Session(), prepare=lambda r, s: None)() is None
    behind_transactional, behind_campaign = seen
    assert behind_transactional(SendLog(priority=0), [server])
    assert not behind_transactional(SendLog(priority=1), [server])
    assert behind_campaign(SendLog(priority=0), [server]) and behind_campaign(SendLog(priority=1), [server])
    assert not behind_campaign(SendLog(priority=1), [SmtpServer(pk=2, host="other")])
    # A transactional message waiting in the pool for this server: the session goes back.
    monkeypatch.setitem(pool._urgent, Session.key, 1)
    assert not behind_campaign(SendLog(priority=1), [server])
    assert behind_campaign(SendLog(priority=0), [server])


def test_a_row_given_back_goes_behind_transactional_rows_queued_meanwhile():
    crew = Crew(float("inf"), deliver=lambda row, servers: True, size=4)
    crew._servers = {1: [SmtpServer(pk=1, host="h")]}
    crew.queue.extend([SendLog(id=1, app_id=1, priority=1), SendLog(id=2, app_id=1, priority=1)])
    taken = crew._take_next(lambda row, servers: True)
    assert taken.id == 1 and crew.ahead == 1 and list(crew.in_flight) == [1]
    crew.queue.appendleft(SendLog(id=9, app_id=1, priority=0))  # a transactional row came in
    crew._give_back(taken)
    assert [r.id for r in crew.queue] == [9, 1, 2] and crew.ahead == 0 and not crew.in_flight


def test_a_row_taken_ahead_goes_back_to_the_outbox_when_the_crew_stops(make_server, make_app):
    """The drain failed (Crew.abandon_all) while a thread's next row had its envelope on the
    wire: that row is not delivered and not left `sending`: it is queued again, untouched."""
    app = make_app(make_server()).app
    first, second = queue(app, 2)
    claimed = {r.id: r for r in outbox.claim([first.id, second.id])}
    crew = Crew(float("inf"), size=4)
    crew.queue.append(claimed[second.id])
    crew._servers = {app.id: list(app.servers.all())}
    taken = crew._take_next(lambda row, servers: True)
    chain = Chain(crew._take_next, crew._give_back)
    chain.ahead = Ahead(taken, crew._servers[app.id][0], [taken.to], {}, b"", "s@example.com", None)
    crew.abandon_all()
    assert crew._move_on(chain) is None
    second.refresh_from_db()
    assert (second.status, second.attempts, second.claim_token) == (S.QUEUED, 0, "")
    assert not crew.in_flight and crew.ahead == 0
