"""Retry classification against scripted SMTP servers (real aiosmtpd on loopback): 4xx and
unreachable servers are retried on the schedule with jitter, 5xx fails at once, retries give
up after the schedule or the maximum age, a stalled server does not hold the worker, and a
refused login is recorded on the server's health.

The scripted server (`ScriptedHandler`, the `scripted_smtp` fixture) and the `queue_one` /
`sweep_and_run` helpers are shared with the other reliability test files.

Over 400 lines on purpose: the scripted-server fixtures and the retry cases that need them
are one unit; other reliability files import the helpers from here."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from django.utils import timezone
from django_q.models import OrmQ

from conftest import Received, free_port
from hub.delivery.outbox import deliver_batch
from hub.models import DeliveryAttempt, FailureType, SendLog, SmtpServer
from hub.sending import SendRequest, accept
from hub.sweeper import sweep

OK_REPLY = "250 2.0.0 Ok: queued as SCRIPTED"

# Generous wall-clock bound for calls that talk to a stalling server: it only keeps a broken
# build from hanging the suite; it is not a performance assertion.
HANG_GUARD_SECONDS = 15


# --- the scripted server -----------------------------------------------------------------------

@dataclass
class ScriptedHandler:
    """An SMTP server that answers from a script. `data_replies` / `mail_replies` are the
    answers to successive DATA / MAIL commands (a plain 250 once they run out); `rcpt_replies`
    maps a recipient to its RCPT answer; `stall_seconds` delays every DATA answer. It counts
    SMTP sessions (one EHLO/HELO each; the controller's own start-up probe says neither) and
    NOOPs, and records what it accepted."""

    data_replies: list[str] = field(default_factory=list)
    mail_replies: list[str] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    stall_seconds: float = 0.0
    messages: list[Received] = field(default_factory=list)
    sessions: int = 0
    noops: int = 0
    data_commands: int = 0
    mail_commands: int = 0
    logins: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # the 5-argument hook must do what aiosmtpd would
        with self.lock:
            self.sessions += 1
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        with self.lock:
            self.sessions += 1
        return f"250 {server.hostname}"

    async def handle_NOOP(self, server, session, envelope, arg):
        with self.lock:
            self.noops += 1
        return "250 OK"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            index, self.mail_commands = self.mail_commands, self.mail_commands + 1
        if index < len(self.mail_replies) and not self.mail_replies[index].startswith("250"):
            return self.mail_replies[index]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            index, self.data_commands = self.data_commands, self.data_commands + 1
        if self.stall_seconds:
            await asyncio.sleep(self.stall_seconds)
            return "451 4.3.0 too slow, the client should have given up"
        reply = self.data_replies[index] if index < len(self.data_replies) else OK_REPLY
        if reply.startswith("250"):
            with self.lock:
                self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                              envelope.original_content or envelope.content))
        return reply


def accept_logins(username: str, passwords: set[str], seen: list[tuple[str, str]]):
    """An aiosmtpd authenticator accepting `username` with any of `passwords`, recording
    every login attempt (so a test can tell which password the hub used)."""

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        seen.append((login, password))
        return AuthResult(success=login == username and password in passwords, handled=False)

    return authenticator


@dataclass
class ScriptedServer:
    host: str
    port: int
    handler: ScriptedHandler
    controller: Controller | None
    kwargs: dict

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def start(self) -> None:
        """(Re)start on the same port with the same handler: a server that was restarted."""
        assert self.controller is None
        self.controller = Controller(self.handler, hostname=self.host, port=self.port, **self.kwargs)
        self.controller.start()


@pytest.fixture
def scripted_smtp() -> Callable[..., ScriptedServer]:
    """Start scripted servers on 127.0.0.1: `scripted_smtp(handler=None, port=None, **kw)`,
    kw passed to aiosmtpd's Controller (e.g. authenticator=..., auth_required=True)."""
    started: list[ScriptedServer] = []

    def start(handler: ScriptedHandler | None = None, port: int | None = None, **kwargs) -> ScriptedServer:
        if "authenticator" in kwargs:
            kwargs.setdefault("auth_require_tls", False)
        server = ScriptedServer("127.0.0.1", port or free_port(), handler or ScriptedHandler(), None, kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def silent_listener():
    """A port that accepts TCP connections (the kernel completes the handshake) but never
    says a word: a server that stalls before its greeting."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def scripted_server_record(make_server, scripted: ScriptedServer, **fields) -> SmtpServer:
    """The SmtpServer row for a scripted server (plain SMTP, no login unless given)."""
    return make_server(None, host=scripted.host, port=scripted.port, **fields)


def queue_one(app, to: str = "rcpt@example.com", **fields) -> SendLog:
    """A row exactly as the API makes it: validated, with its delivery task on the broker."""
    return accept(app, SendRequest(to=to, subject=fields.pop("subject", "Reliability test"),
                                   message=fields.pop("message", "<p>Hello</p>"), **fields))


def sweep_and_run(run_queue) -> int:
    """What the per-minute schedule does, then what a worker does: returns tasks run."""
    sweep()
    return run_queue()


def make_due(row: SendLog) -> None:
    """Bring a retry's due time forward instead of waiting for it."""
    SendLog.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def attempts_of(row: SendLog) -> list[tuple[int | None, str, int | None]]:
    return list(DeliveryAttempt.objects.filter(log=row).order_by("id").values_list("server_id", "result",
                                                                                   "smtp_code"))


# --- 4xx then 250 ------------------------------------------------------------------------------

def test_451_then_250_is_retried_on_schedule_and_sent(scripted_smtp, make_server, make_app, run_queue,
                                                      settings):
    settings.HUB_RETRY_SCHEDULE = [60, 300]
    smtp = scripted_smtp(ScriptedHandler(data_replies=["451 4.3.0 try later"]))
    server = scripted_server_record(make_server, smtp)
    row = queue_one(make_app(server).app)

    before = timezone.now()
    assert run_queue() == 1
    after = timezone.now()

    row.refresh_from_db()
    assert row.status == SendLog.Status.RETRYING, row.error
    assert row.attempts == 1
    assert (row.smtp_code, row.smtp_reply) == (451, "4.3.0 try later")
    assert row.sent_at is None and row.failure_type is None
    # First retry after schedule[0] = 60 s, with ±20 % jitter.
    assert before + timedelta(seconds=48) <= row.next_attempt_at <= after + timedelta(seconds=72)
    assert smtp.messages == []
    # Not due yet: the sweeper leaves it alone.
    assert sweep()["due"] == 0
    assert OrmQ.objects.count() == 0

    make_due(row)
    assert sweep_and_run(run_queue) == 1

    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT, row.error
    assert row.attempts == 2
    assert row.smtp_code == 250 and row.next_attempt_at is None and row.sent_at is not None
    assert attempts_of(row) == [(server.id, DeliveryAttempt.Result.DEFERRED, 451),
                                (server.id, DeliveryAttempt.Result.SENT, 250)]
    assert smtp.handler.data_commands == 2
    assert len(smtp.messages) == 1
    assert smtp.messages[0].message["X-SMTPHub-Log-ID"] == str(row.id)


# --- 5xx is permanent --------------------------------------------------------------------------

def test_550_on_data_fails_at_once_and_is_not_retried(scripted_smtp, make_server, make_app, run_queue, settings):
    settings.HUB_RETRY_SCHEDULE = [0, 0, 0]
    smtp = scripted_smtp(ScriptedHandler(data_replies=["550 5.7.1 Message refused by local policy"]))
    server = scripted_server_record(make_server, smtp)
    row = queue_one(make_app(server).app)

    assert run_queue() == 1

    row.refresh_from_db()
    assert row.status == SendLog.Status.FAILED
    assert row.attempts == 1
    assert (row.smtp_code, row.smtp_reply) == (550, "5.7.1 Message refused by local policy")
    assert row.failure_type == FailureType.REFUSED
    assert row.next_attempt_at is None and row.sent_at is None
    assert attempts_of(row) == [(server.id, DeliveryAttempt.Result.REFUSED, 550)]
    # No retry: even with an instant schedule the sweeper has nothing to hand out.
    assert sweep()["due"] == 0
    assert OrmQ.objects.count() == 0
    assert run_queue() == 0
    assert smtp.handler.data_commands == 1
    assert smtp.messages == []


@pytest.mark.parametrize("script,status,failure_type", [
    ({"mail_replies": ["451 4.7.1 greylisted, come back later"]}, SendLog.Status.RETRYING, None),
    ({"mail_replies": ["553 5.7.1 sender address rejected"]}, SendLog.Status.FAILED, FailureType.REFUSED),
    ({"rcpt_replies": {"rcpt@example.com": "450 4.2.0 mailbox busy"}}, SendLog.Status.RETRYING, None),
    ({"rcpt_replies": {"rcpt@example.com": "550 5.7.1 relaying denied"}}, SendLog.Status.FAILED,
     FailureType.REFUSED),
], ids=["mail-451", "mail-553", "rcpt-450", "rcpt-550"])
def test_reply_class_decides_on_every_command(scripted_smtp, make_server, make_app, settings, script, status,
                                              failure_type):
    # 4xx / 5xx mean the same thing whichever command the server answers with them.
    settings.HUB_RETRY_SCHEDULE = [60]
    smtp = scripted_smtp(ScriptedHandler(**script))
    row = queue_one(make_app(scripted_server_record(make_server, smtp)).app)

    deliver_batch([row.id])

    row.refresh_from_db()
    assert row.status == status, row.error
    assert row.attempts == 1
    assert row.failure_type == failure_type
    assert (row.next_attempt_at is not None) == (status == SendLog.Status.RETRYING)
    assert smtp.handler.data_commands == 0
    assert smtp.messages == []


# --- giving up ---------------------------------------------------------------------------------

def test_4xx_forever_gives_up_after_the_schedule(scripted_smtp, make_server, make_app, run_queue, settings):
    # (A retry due at once would be taken again by the same drain; with a real backoff each
    # retry waits for the sweeper to wake the workers.)
    settings.HUB_RETRY_SCHEDULE = [60, 60]
    smtp = scripted_smtp(ScriptedHandler(data_replies=["452 4.3.1 insufficient system storage"] * 100))
    server = scripted_server_record(make_server, smtp)
    row = queue_one(make_app(server).app)

    assert run_queue() == 1
    for _ in range(10):  # bounded: the schedule allows 3 attempts in all
        row.refresh_from_db()
        if row.is_final:
            break
        assert row.status == SendLog.Status.RETRYING
        make_due(row)
        assert sweep_and_run(run_queue) == 1

    row.refresh_from_db()
    assert row.status == SendLog.Status.FAILED
    assert row.attempts == len(settings.HUB_RETRY_SCHEDULE) + 1 == 3
    assert row.error.startswith("gave up after 3 attempts"), row.error
    assert "452" in row.error
    assert row.smtp_code == 452
    assert row.failure_type is not None
    assert row.next_attempt_at is None
    assert attempts_of(row) == [(server.id, DeliveryAttempt.Result.DEFERRED, 452)] * 3
    assert smtp.handler.data_commands == 3
    # Final: nothing more is queued.
    assert sweep()["due"] == 0
    assert smtp.messages == []


def test_message_older_than_max_age_gives_up(scripted_smtp, make_server, make_app, run_queue, settings):
    settings.HUB_RETRY_SCHEDULE = [60, 300, 900]
    settings.HUB_RETRY_MAX_AGE = 3600
    smtp = scripted_smtp(ScriptedHandler(data_replies=["451 4.3.0 try later"] * 10))
    row = queue_one(make_app(scripted_server_record(make_server, smtp)).app)
    SendLog.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(seconds=3601))

    assert run_queue() == 1

    row.refresh_from_db()
    assert row.status == SendLog.Status.FAILED
    assert row.attempts == 1
    assert row.error.startswith("gave up after too old"), row.error
    assert row.next_attempt_at is None
    assert sweep()["due"] == 0
    assert smtp.messages == []


def test_young_message_is_not_given_up(scripted_smtp, make_server, make_app, run_queue, settings):
    # The same as above one minute younger than the limit: still retrying.
    settings.HUB_RETRY_SCHEDULE = [60]
    settings.HUB_RETRY_MAX_AGE = 3600
    smtp = scripted_smtp(ScriptedHandler(data_replies=["451 4.3.0 try later"]))
    row = queue_one(make_app(scripted_server_record(make_server, smtp)).app)
    SendLog.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(seconds=3540))

    assert run_queue() == 1

    row.refresh_from_db()
    assert row.status == SendLog.Status.RETRYING, row.error


# --- unreachable, stalled, refused login ------------------------------------------------------

def test_connection_refused_is_retried_then_sent_when_the_server_is_back(scripted_smtp, make_server, make_app,
                                                                         run_queue, settings):
    settings.HUB_RETRY_SCHEDULE = [60]
    port = free_port()  # nothing listens here
    server = make_server(None, host="127.0.0.1", port=port)
    row = queue_one(make_app(server).app)

    assert run_queue() == 1

    row.refresh_from_db()
    assert row.status == SendLog.Status.RETRYING
    assert row.attempts == 1
    assert row.smtp_code is None
    assert "cannot connect" in row.error, row.error
    assert row.failure_type is None and row.next_attempt_at is not None
    assert attempts_of(row) == [(server.id, DeliveryAttempt.Result.CONNECT_FAILED, None)]
    server.refresh_from_db()
    assert server.failing_since is not None and server.last_error_at is not None
    assert "cannot connect" in server.last_error

    # The server comes up on that port; the retry gets through and the server is healthy again.
    smtp = scripted_smtp(port=port)
    make_due(row)
    assert sweep_and_run(run_queue) == 1

    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT, row.error
    assert row.attempts == 2
    assert len(smtp.messages) == 1
    server.refresh_from_db()
    assert server.failing_since is None and server.last_success_at is not None


@pytest.mark.parametrize("where", ["data", "greeting"])
def test_stalled_server_times_out_and_is_retried(scripted_smtp, silent_listener, make_server, make_app, run_queue,
                                                 settings, where):
    settings.HUB_RETRY_SCHEDULE = [60]
    if where == "data":
        # Accepts the session, then sits on the message far longer than the hub waits.
        smtp = scripted_smtp(ScriptedHandler(stall_seconds=60))
        server = scripted_server_record(make_server, smtp, timeout=1)
    else:
        server = make_server(None, host="127.0.0.1", port=silent_listener, timeout=1)
    row = queue_one(make_app(server).app)

    started = time.monotonic()
    assert run_queue() == 1
    # Only a hang guard: the worker came back (timeout=1 s), it is not stuck on the server.
    assert time.monotonic() - started < HANG_GUARD_SECONDS

    row.refresh_from_db()
    assert row.status == SendLog.Status.RETRYING, row.error
    assert row.attempts == 1
    assert row.next_attempt_at is not None and row.sent_at is None
    assert "timed out" in row.error.lower(), row.error
    (attempt,) = DeliveryAttempt.objects.filter(log=row)
    expected = DeliveryAttempt.Result.DEFERRED if where == "data" else DeliveryAttempt.Result.CONNECT_FAILED
    assert attempt.result == expected
    server.refresh_from_db()
    assert server.failing_since is not None


def test_wrong_password_is_retried_and_recorded_on_the_server(smtp_sink_factory, make_server, make_app, run_queue,
                                                              settings):
    settings.HUB_RETRY_SCHEDULE = [60]
    sink = smtp_sink_factory("plain", username="relay-user", password="right")
    server = make_server(sink, password="wrong")
    row = queue_one(make_app(server).app)

    assert run_queue() == 1

    row.refresh_from_db()
    assert row.status == SendLog.Status.RETRYING, row.error
    assert row.attempts == 1
    assert row.smtp_code == 535
    assert "authentication" in row.smtp_reply.lower(), row.smtp_reply
    assert "535" in row.error
    assert attempts_of(row) == [(server.id, DeliveryAttempt.Result.CONNECT_FAILED, 535)]
    server.refresh_from_db()
    assert server.failing_since is not None and server.last_error_at is not None
    assert "535" in server.last_error
    assert sink.messages == []


# --- a message whose delivery crashes -------------------------------------------------------

def test_message_that_crashes_delivery_is_not_retried_forever(smtp_sink, make_server, make_app, settings):
    # A row delivery cannot even build (its domain has no punycode form; the API accepted
    # such rows, see api/tests/test_fuzz.py). deliver_batch puts a row whose delivery raised
    # back to `retrying`, which is right for a passing fault, but the retry limits must
    # still apply: after the schedule is used up the row ends `failed` with a reason, instead
    # of crashing a task every minute for ever.
    settings.HUB_RETRY_SCHEDULE = [0, 0]
    app = make_app(make_server(smtp_sink)).app
    row = SendLog.objects.create(app=app, to="alice@example.com\ufffd", subject="poison", html_body="<p>x</p>")

    for _ in range(10):  # bounded: 3 passes should be all it takes
        row.refresh_from_db()
        if row.is_final:
            break
        assert row.status in (SendLog.Status.QUEUED, SendLog.Status.RETRYING)
        make_due(row)
        try:
            deliver_batch([row.id])
        except Exception:  # noqa: BLE001, S110 - the task may crash; what matters is the row's fate
            pass

    row.refresh_from_db()
    assert row.status == SendLog.Status.FAILED, (row.status, row.attempts, row.error)
    assert row.error
    assert smtp_sink.messages == []
