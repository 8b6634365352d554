"""Delivery: claim outbox rows, build the MIME message, hand it to the SMTP server, record
exactly what the server said. A drain task delivers claimed batches of rows over one pooled
connection per server (see drain, and hub.tasks for how drains are asked for)."""

from __future__ import annotations

import base64
import logging
import random
import re
import smtplib
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from email import encoders
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import compat32
from email.utils import formataddr, formatdate, getaddresses, parseaddr

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import bounces, queries, throttle
from .calendar import build_ics
from .crypto import DecryptionError
from .models import Attachment, DeliveryAttempt, SendLog, SmtpServer, Suppression
from .textify import html_to_text

log = logging.getLogger(__name__)

# smtplib sends bytes as they are: lines must already end in CRLF.
SMTP_POLICY = compat32.clone(linesep="\r\n")


# --- the message ---------------------------------------------------------------------------

def ascii_address(addr: str) -> str:
    """user@bücher.example -> user@xn--bcher-kva.example (IDN domains go out as punycode)."""
    local, _, domain = addr.rpartition("@")
    try:
        domain.encode("ascii")
    except UnicodeEncodeError:
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


# Every character Python's email package (str.splitlines) treats as a line break.
_LINE_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def one_line(value: str) -> str:
    """Header text on one line: the API refuses line breaks, but names typed in the admin
    or stored by older versions must not split a header either."""
    return _LINE_BREAKS.sub(" ", value)


def _header_text(value: str) -> str | Header:
    value = one_line(value)
    try:
        value.encode("ascii")
        return value
    except UnicodeEncodeError:
        return Header(value, "utf-8")


def _address_header(text: str) -> str:
    return ", ".join(formataddr((one_line(name), ascii_address(addr)), charset="utf-8")
                     for name, addr in getaddresses([one_line(text)]))


def envelope_recipients(row: SendLog) -> list[str]:
    texts = (row.rcpt_to,) if row.rcpt_to else (row.to, row.cc, row.bcc)
    return [ascii_address(addr) for text in texts if text for _name, addr in getaddresses([text])]


def _attachment_part(filename: str, content_type: str, content: bytes) -> MIMEBase:
    maintype, _, subtype = content_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(content)
    encoders.encode_base64(part)
    try:
        filename.encode("ascii")
        part.add_header("Content-Disposition", "attachment", filename=filename)
    except UnicodeEncodeError:
        part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", filename))  # RFC 2231
    return part


def _boundary() -> str:
    # Chosen here rather than by the generator, which compiles a regex per message to
    # check its boundary against the text. Every part we build is base64 (MIMEText with
    # utf-8, attachments), and "=_" never occurs in base64 or quoted-printable.
    return f"=_smtphub_{uuid.uuid4().hex}"


def build_message(row: SendLog, sender: str) -> Message:
    # The legacy (compat32) email API: several times cheaper than the default policy's
    # EmailMessage and produces the same standard MIME (as Django's own mail does).
    if row.raw_message is not None:
        return relay_message(row, sender)
    body = MIMEMultipart("alternative", boundary=_boundary())
    text = row.text_body or html_to_text(row.html_body)
    body.attach(MIMEText(text, "plain", "utf-8"))
    body.attach(MIMEText(row.html_body, "html", "utf-8"))
    extra: list[Message] = []
    if row.event:
        attendees = [pair for text in (row.to, row.cc) if text for pair in getaddresses([text])]
        ics = build_ics(row.event, (row.from_name, sender), attendees).decode("utf-8")
        # Calendar clients read the text/calendar alternative; others get the .ics file.
        calendar = MIMEText(ics, "calendar", "utf-8")
        calendar.set_param("method", row.event["method"])
        body.attach(calendar)
        extra.append(_attachment_part("invite.ics", "application/ics", ics.encode("utf-8")))
    if row.attachment_count:
        extra += [_attachment_part(a.filename, a.content_type, bytes(a.content))
                  for a in Attachment.objects.filter(log=row).order_by("id")]
    if extra:
        msg = MIMEMultipart("mixed", boundary=_boundary())
        msg.attach(body)
        for part in extra:
            msg.attach(part)
    else:
        msg = body
    msg["Subject"] = _header_text(row.subject)
    msg["From"] = formataddr((one_line(row.from_name), ascii_address(sender)), charset="utf-8")
    msg["To"] = _address_header(row.to)
    if row.cc:
        msg["Cc"] = _address_header(row.cc)
    if row.reply_to:
        msg["Reply-To"] = _address_header(row.reply_to)
    # Bcc never goes into a header: those recipients are only in the envelope.
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = row.message_id
    msg["X-SMTPHub-Log-ID"] = str(row.id)
    msg["X-SMTPHub-App-ID"] = str(row.app_id)
    return msg


def relay_message(row: SendLog, sender: str) -> Message:
    """A client's own MIME message (SMTP submission), relayed intact but for the From policy:
    providers accept only their account's address in From, so a different From becomes
    `"Display name" <sender>` and the original address moves to Reply-To (unless the client
    set one). Bcc headers are dropped; Message-ID and Date are added when missing."""
    msg = BytesParser(policy=compat32).parsebytes(bytes(row.raw_message))
    name, addr = parseaddr(str(msg.get("From", "")))
    if addr.lower() != sender.lower():
        if addr and "Reply-To" not in msg:
            msg["Reply-To"] = msg["From"]
        del msg["From"]
        name = str(make_header(decode_header(name))) if name else ""
        msg["From"] = formataddr((name, ascii_address(sender)), charset="utf-8")
    del msg["Bcc"]
    if "Message-ID" not in msg:
        msg["Message-ID"] = row.message_id
    if "Date" not in msg:
        msg["Date"] = formatdate(localtime=True)
    del msg["X-SMTPHub-Log-ID"]
    msg["X-SMTPHub-Log-ID"] = str(row.id)
    return msg


# --- the connection ------------------------------------------------------------------------

@dataclass
class Outcome:
    status: str  # SendLog.Status.SENT or FAILED
    smtp_code: int | None = None
    smtp_reply: str = ""
    error: str = ""
    refused: dict = field(default_factory=dict)
    # A transient failure (connection, timeout, 4xx) may succeed later; retry policy lives
    # in the caller.
    transient: bool = False
    # The connection was lost before DATA: nothing can have been delivered, so the message
    # may go again at once on a fresh connection.
    lost_before_data: bool = False


class ConnectionFailed(Exception):
    """The server could not be reached, refused TLS or refused our login."""

    def __init__(self, error: str, smtp_code: int | None = None, smtp_reply: str = "", transient: bool = True):
        super().__init__(error)
        self.error, self.smtp_code, self.smtp_reply, self.transient = error, smtp_code, smtp_reply, transient


def _reply_text(resp: bytes | str) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


def tls_context(server: SmtpServer) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not server.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _login(conn: smtplib.SMTP, username: str, password: str) -> None:
    try:
        (username + password).encode("ascii")
    except UnicodeEncodeError:
        # smtplib encodes credentials as ASCII; send AUTH PLAIN in UTF-8 ourselves (RFC 4616).
        token = base64.b64encode(f"\0{username}\0{password}".encode("utf-8")).decode("ascii")
        code, resp = conn.docmd("AUTH", "PLAIN " + token)
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, resp)
        return
    conn.login(username, password)


class SmtpSession:
    """One open, authenticated connection to one SMTP server."""

    def __init__(self, server: SmtpServer):
        self.server = server
        self.conn: smtplib.SMTP | None = None
        self.opened_at = 0.0
        self.last_used = 0.0
        self.uses = 0

    def open(self) -> None:
        server = self.server
        try:
            password = server.get_password()
        except DecryptionError as exc:
            raise ConnectionFailed(str(exc), transient=False) from exc
        try:
            if server.security == SmtpServer.Security.SSL:
                conn = smtplib.SMTP_SSL(server.host, server.port, local_hostname=settings.HUB_DOMAIN,
                                        timeout=server.timeout, context=tls_context(server))
            else:
                conn = smtplib.SMTP(server.host, server.port, local_hostname=settings.HUB_DOMAIN,
                                    timeout=server.timeout)
            self.conn = conn
            conn.ehlo()
            if server.security == SmtpServer.Security.STARTTLS:
                conn.starttls(context=tls_context(server))
                conn.ehlo()
            if server.username:
                _login(conn, server.username, password)
            self.opened_at, self.uses = time.monotonic(), 0
            self.last_used = self.opened_at
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            raise ConnectionFailed(f"authentication failed: {exc.smtp_code} {_reply_text(exc.smtp_error)}",
                                   exc.smtp_code, _reply_text(exc.smtp_error), transient=False) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise ConnectionFailed(f"server refused the session: {exc.smtp_code} {_reply_text(exc.smtp_error)}",
                                   exc.smtp_code, _reply_text(exc.smtp_error),
                                   transient=400 <= exc.smtp_code < 500) from exc
        except (smtplib.SMTPException, OSError, ssl.SSLError, UnicodeError, ValueError) as exc:
            self.close()
            raise ConnectionFailed(f"cannot connect to {server.host}:{server.port}: "
                                   f"{type(exc).__name__}: {exc}") from exc

    def send(self, envelope_from: str, rcpts: list[str], data: str | bytes) -> Outcome:
        """One SMTP transaction. Per-recipient refusals are recorded; the message counts as
        sent when the server accepts it for at least one recipient."""
        conn = self.conn
        assert conn is not None
        self.uses += 1
        self.last_used = time.monotonic()
        data_started = False
        try:
            code, resp = conn.mail(envelope_from)
            if code != 250:
                conn.rset()
                return Outcome(SendLog.Status.FAILED, code, _reply_text(resp),
                               f"sender refused: {code} {_reply_text(resp)}", transient=400 <= code < 500)
            refused: dict[str, list] = {}
            for rcpt in rcpts:
                code, resp = conn.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = [code, _reply_text(resp)]
            if len(refused) == len(rcpts):
                conn.rset()
                code, text = next(reversed(refused.values()))
                transient = all(400 <= c < 500 for c, _t in refused.values())
                return Outcome(SendLog.Status.FAILED, code, text, "all recipients refused", refused, transient)
            data_started = True
            code, resp = conn.data(data)
            self.last_used = time.monotonic()
            text = _reply_text(resp)
            if code != 250:
                return Outcome(SendLog.Status.FAILED, code, text, f"message refused: {code} {text}",
                               refused, transient=400 <= code < 500)
            return Outcome(SendLog.Status.SENT, code, text, "", refused)
        except smtplib.SMTPServerDisconnected as exc:
            self.close()
            return Outcome(SendLog.Status.FAILED, None, "", f"server disconnected: {exc}", transient=True,
                           lost_before_data=not data_started)
        except smtplib.SMTPResponseException as exc:
            # The transaction was left half-done (e.g. DATA refused): reset it, or drop the
            # connection, so the next message does not start inside it.
            try:
                conn.rset()
            except (smtplib.SMTPException, OSError):
                self.close()
            text = _reply_text(exc.smtp_error)
            return Outcome(SendLog.Status.FAILED, exc.smtp_code, text, f"{exc.smtp_code} {text}",
                           transient=400 <= exc.smtp_code < 500)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return Outcome(SendLog.Status.FAILED, None, "", f"{type(exc).__name__}: {exc}", transient=True)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                try:
                    self.conn.close()
                except OSError:
                    pass
            self.conn = None

    @property
    def is_open(self) -> bool:
        return self.conn is not None

    def still_good(self) -> bool:
        """Reusable: young enough, not used too often, and, when it has been idle for a
        while, answers NOOP. (A connection that died anyway is caught at MAIL FROM, before
        any data, and replaced: see _try_servers.)"""
        if self.conn is None:
            return False
        now = time.monotonic()
        if now - self.opened_at > settings.HUB_SMTP_REUSE_SECONDS or self.uses >= settings.HUB_SMTP_REUSE_MAX:
            return False
        if now - self.last_used < settings.HUB_SMTP_NOOP_AFTER_IDLE_SECONDS:
            return True
        try:
            return self.conn.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False


def _fingerprint(server: SmtpServer) -> tuple:
    return (server.host, server.port, server.security, server.verify_tls, server.username,
            server.password_encrypted, server.timeout)


class ConnectionPool:
    """Open SMTP connections of this worker process, one per server, reused across tasks
    within HUB_SMTP_REUSE_SECONDS / HUB_SMTP_REUSE_MAX and checked with NOOP first. Each
    thread has its own (a threaded web server may deliver `sync=1` sends in parallel)."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def sessions(self) -> dict[int, tuple[tuple, SmtpSession]]:
        if not hasattr(self._local, "sessions"):
            self._local.sessions = {}
        return self._local.sessions

    def get(self, server: SmtpServer) -> SmtpSession:
        """An open session; raises ConnectionFailed."""
        entry = self.sessions.pop(server.id, None)
        if entry is not None:
            fingerprint, session = entry
            if fingerprint == _fingerprint(server) and session.still_good():
                self.sessions[server.id] = entry
                return session
            session.close()
        session = SmtpSession(server)
        session.open()
        self.sessions[server.id] = (_fingerprint(server), session)
        return session

    def discard(self, server: SmtpServer) -> None:
        entry = self.sessions.pop(server.id, None)
        if entry is not None:
            entry[1].close()

    def close_all(self) -> None:
        for _fp, session in self.sessions.values():
            session.close()
        self.sessions.clear()


pool = ConnectionPool()


# --- the task ---------------------------------------------------------------------------------

def claim(log_ids: list[int]) -> list[SendLog]:
    """Atomically take those of these rows that are still waiting; rows another worker has,
    or that are already finished, are left alone (so a row handed out twice is sent once).
    A `retrying` row only once it is due: a leftover task must not skip the backoff."""
    token = uuid.uuid4().hex
    now = timezone.now()
    waiting = Q(status=SendLog.Status.QUEUED) | Q(status=SendLog.Status.RETRYING, next_attempt_at__lte=now)
    taken = SendLog.objects.filter(waiting, pk__in=log_ids).update(
        status=SendLog.Status.SENDING, claim_token=token, claimed_at=now)
    return _claimed(token, log_ids) if taken else []


def claim_waiting(limit: int) -> list[SendLog]:
    """Take up to `limit` waiting rows of the outbox: retries that are due first (few, and
    older; a backlog of new mail must not hold them back), then queued ones, oldest first.
    Several workers (and machines) drain at once: on MariaDB they skip each other's locked
    rows; SQLite runs the whole claim as one write transaction."""
    token = uuid.uuid4().hex
    with transaction.atomic():
        # Read back in the same transaction: if that failed after a commit, the rows would
        # sit in `sending` until the sweeper's rescue.
        ids = queries.claim_waiting(limit, token, timezone.now())
        return _claimed(token, ids) if ids else []


def _claimed(token: str, ids: list[int]) -> list[SendLog]:
    """Those of these rows this claim won (by primary key: claim_token has no index)."""
    return list(SendLog.objects.filter(pk__in=ids, claim_token=token).order_by("id"))


def servers_in_order(app_id: int) -> list[SmtpServer]:
    """The app's enabled servers by priority, with recently failing ones moved to the end:
    while the primary is down each message should not first wait for it to time out."""
    from .models import AppServer

    links = AppServer.objects.filter(app_id=app_id, server__enabled=True).select_related("server")
    return by_health([link.server for link in links.order_by("priority", "id")])


def by_health(servers: list[SmtpServer]) -> list[SmtpServer]:
    """Priority order, with servers that failed within the cooldown moved to the end."""
    cutoff = timezone.now() - timedelta(seconds=settings.HUB_SERVER_COOLDOWN_SECONDS)
    return sorted(servers, key=lambda s: bool(s.failing_since and s.last_error_at and s.last_error_at > cutoff))


def _mark_server(server: SmtpServer, error: str = "") -> None:
    """Keep the server's health current, writing only when it changes (or once a minute)."""
    now = timezone.now()
    if error:
        server.failing_since = server.failing_since or now
        server.last_error, server.last_error_at = error[:2000], now
        SmtpServer.objects.filter(pk=server.pk).update(
            failing_since=server.failing_since, last_error=server.last_error, last_error_at=now)
    elif server.failing_since or not server.last_success_at or now - server.last_success_at > timedelta(minutes=1):
        server.failing_since, server.last_success_at = None, now
        SmtpServer.objects.filter(pk=server.pk).update(failing_since=None, last_success_at=now)


@dataclass
class Try:
    server: SmtpServer
    result: str
    outcome: Outcome
    started_at: object
    duration_ms: int


def _connect_failed(tries: list[Try], server: SmtpServer, exc: ConnectionFailed, started, t0: float) -> None:
    outcome = Outcome(SendLog.Status.FAILED, exc.smtp_code, exc.smtp_reply, exc.error, transient=True)
    tries.append(Try(server, DeliveryAttempt.Result.CONNECT_FAILED, outcome, started,
                     int((time.monotonic() - t0) * 1000)))
    _mark_server(server, exc.error)


def _try_servers(row: SendLog, servers: list[SmtpServer]) -> tuple[Outcome | None, SmtpServer | None, list[Try], float]:
    """Offer the message to each server in turn until one gives an answer about the
    message itself. Returns (outcome or None, server that answered, tries, throttle wait)."""
    tries: list[Try] = []
    throttle_wait = 0.0
    for server in servers:
        started, t0 = timezone.now(), time.monotonic()
        try:
            session = pool.get(server)
        except ConnectionFailed as exc:
            _connect_failed(tries, server, exc, started, t0)
            continue  # fail over to the next server
        slot, wait = throttle.acquire(server)
        if wait:
            throttle_wait = wait if not throttle_wait else min(throttle_wait, wait)
            continue  # over this server's limit: another server may have room
        sender, rcpts = ascii_address(server.sender), envelope_recipients(row)
        data = build_message(row, server.sender).as_bytes(policy=SMTP_POLICY)
        reused = session.uses > 0
        outcome = session.send(sender, rcpts, data)
        if outcome.lost_before_data and reused:
            # The pooled connection had died while idle: reconnect once and send now.
            pool.discard(server)
            try:
                session = pool.get(server)
            except ConnectionFailed as exc:
                throttle.release(slot)
                _connect_failed(tries, server, exc, started, t0)
                continue  # the server is gone: fail over
            outcome = session.send(sender, rcpts, data)
        ms = int((time.monotonic() - t0) * 1000)
        if outcome.status == SendLog.Status.SENT:
            result = DeliveryAttempt.Result.SENT
        elif outcome.transient:
            result = DeliveryAttempt.Result.DEFERRED
        else:
            result = DeliveryAttempt.Result.REFUSED
        if not session.is_open:  # lost mid-transaction: don't reuse
            pool.discard(server)
            _mark_server(server, outcome.error)
        else:
            _mark_server(server)
        tries.append(Try(server, result, outcome, started, ms))
        return outcome, server, tries, 0.0
    return None, None, tries, throttle_wait


def _too_old(row: SendLog, now) -> bool:
    return (now - row.created_at).total_seconds() > settings.HUB_RETRY_MAX_AGE


def _retry_delay(row: SendLog, attempts: int, now) -> float | None:
    """Seconds until the next try after `attempts` tries, or None when the message is out
    of tries or older than HUB_RETRY_MAX_AGE."""
    schedule = settings.HUB_RETRY_SCHEDULE
    if attempts > len(schedule) or _too_old(row, now):
        return None
    return schedule[attempts - 1] * random.uniform(0.8, 1.2)


def _finish(row: SendLog, outcome: Outcome | None, server: SmtpServer | None, tries: list[Try],
            throttle_wait: float) -> None:
    now = timezone.now()
    if tries:
        row.attempts += 1
    if outcome is None:
        # No server answered about the message: all unreachable, or all over their limits.
        last = tries[-1].outcome if tries else None
        outcome = last or Outcome(SendLog.Status.FAILED, error="waiting for the SMTP servers' send limits")
        outcome.transient = True
    row.status = outcome.status
    row.smtp_code, row.smtp_reply = outcome.smtp_code, outcome.smtp_reply[:4000]
    row.error = outcome.error[:4000]
    row.refused_recipients = outcome.refused
    row.next_attempt_at = None
    row.failure_type = None
    if server is not None:
        row.smtp_server, row.from_email = server, server.sender
    if outcome.status == SendLog.Status.SENT:
        row.sent_at = now
    elif outcome.transient:
        if tries:
            delay = _retry_delay(row, row.attempts, now)
            if throttle_wait and delay is not None:
                delay = min(delay, throttle_wait)
        else:
            delay = None if _too_old(row, now) else throttle_wait
        if delay is None:
            row.status = SendLog.Status.FAILED
            why = "too old" if _too_old(row, now) else f"{row.attempts} attempts"
            row.error = f"gave up after {why}: {outcome.error}"[:4000]
        else:
            row.status = SendLog.Status.RETRYING
            row.next_attempt_at = now + timedelta(seconds=delay)
    if row.status == SendLog.Status.FAILED:
        row.failure_type = bounces.failure_type(outcome.smtp_code, outcome.smtp_reply or outcome.error)
    fields = ["status", "attempts", "from_email", "smtp_code", "smtp_reply", "error",
              "refused_recipients", "next_attempt_at", "failure_type", "sent_at"]
    values = {f: getattr(row, f) for f in fields}
    values.update(smtp_server=row.smtp_server_id, updated_at=now)
    # Only while this worker still holds the row: if the sweeper gave it to another worker
    # meanwhile (this one ran past HUB_STUCK_SENDING_SECONDS), that worker's result stands.
    # (hub.queries: this runs once per message, the ORM's compiling would double its cost;
    # the statements are prepared before the transaction, which then holds the lock briefly.)
    record = queries.Update(SendLog, values, id=row.pk, status=SendLog.Status.SENDING, claim_token=row.claim_token)
    attempts = [queries.Insert(DeliveryAttempt(
        log=row, server=t.server, result=t.result, smtp_code=t.outcome.smtp_code,
        smtp_reply=t.outcome.smtp_reply[:4000], error=t.outcome.error[:4000],
        started_at=t.started_at, duration_ms=t.duration_ms)) for t in tries]
    with transaction.atomic():
        if not record.run():
            log.warning("SendLog %s was taken over while this worker delivered it; outcome %s not recorded",
                        row.id, outcome.status)
            return
        for attempt in attempts:
            attempt.run()
        _suppress_hard_bounces(row, outcome)


def _suppress_hard_bounces(row: SendLog, outcome: Outcome) -> None:
    for addr, (code, text) in outcome.refused.items():
        if bounces.is_hard_bounce(code, text):
            try:
                with transaction.atomic():
                    Suppression.objects.create(app_id=row.app_id, email=addr.lower(), log=row,
                                               smtp_code=code, smtp_reply=text[:4000], reason="hard bounce")
            except IntegrityError:
                pass  # already suppressed: the first bounce is the one on record


def deliver_batch(log_ids: list[int]) -> None:
    """Deliver the given SendLog rows that are still waiting, over pooled connections (the
    API's `sync=1`, the admin's test email)."""
    rows = claim(log_ids)
    deliver_claimed(rows, time.monotonic() + settings.HUB_BATCH_TIME_BUDGET_SECONDS)


def drain() -> int:
    """The delivery task: deliver what waits in the outbox, a claimed batch at a time,
    until nothing is left or the time budget is spent (then a fresh task takes over).
    Returns the number of rows it claimed."""
    from .tasks import take_wakeup_request, wake_workers

    take_wakeup_request()  # before looking for rows (see hub.tasks.wake_workers)
    deadline = time.monotonic() + settings.HUB_BATCH_TIME_BUDGET_SECONDS
    claimed = 0
    try:
        while time.monotonic() < deadline:
            rows = claim_waiting(settings.HUB_DELIVERY_BATCH)
            if not rows:
                return claimed
            if len(rows) == settings.HUB_DELIVERY_BATCH:
                # A full batch: more may be waiting. Ask for another drain, so an idle worker
                # (here or on another machine) joins in rather than one worker doing it all.
                wake_workers()
            claimed += len(rows)
            deliver_claimed(rows, deadline)
            if len(rows) < settings.HUB_DELIVERY_BATCH and settings.HUB_DRAIN_GATHER_MS:
                # Messages are trickling in one by one: let a few gather before the next claim
                # (a write transaction and a few queries), so each claim takes several.
                time.sleep(settings.HUB_DRAIN_GATHER_MS / 1000)
    except BaseException:
        # This drain took the wake-up request and dies with it (the database went away, the
        # task was stopped): ask for another, or waiting rows would wait for the sweeper.
        wake_workers()
        raise
    wake_workers()  # out of time, and there may be more: hand over to a fresh task
    return claimed


def deliver_claimed(rows: list[SendLog], deadline: float) -> None:
    """Deliver rows this worker has claimed. Rows not started by `deadline` go back to the
    queue; whatever goes wrong, no claimed row stays in `sending`."""
    # Each app's servers are read once per batch: an admin's change applies to the next.
    servers_by_app: dict[int, list[SmtpServer]] = {}
    pending = {row.id: row for row in rows}
    try:
        for row in rows:
            if time.monotonic() > deadline:
                # Slow servers: hand the rest back before the task's hard time limit.
                _release(list(pending))
                pending.clear()
                break
            if row.app_id not in servers_by_app:
                servers_by_app[row.app_id] = servers_in_order(row.app_id)
            _deliver_row(row, servers_by_app[row.app_id])
            del pending[row.id]
    finally:
        # Whatever went wrong above (the database, a killed task), no claimed row stays in
        # `sending`.
        for row in pending.values():
            _abandon(row)


def _deliver_row(row: SendLog, servers: list[SmtpServer]) -> None:
    """One row, on its own: whatever goes wrong with it is recorded on it and does not touch
    the other rows of the batch."""
    attempts_before = row.attempts
    result = None
    try:
        if not servers:
            # Servers were disabled after the message was accepted: wait for an admin.
            outcome = Outcome(SendLog.Status.FAILED, error="no enabled SMTP server for this app", transient=True)
            result = (outcome, None, [], 60.0)
        else:
            # Health seen earlier in this batch counts: a server that just failed goes last.
            result = _try_servers(row, by_health(servers))
        _finish(row, *result)
    except Exception:
        log.exception("delivery of SendLog %s failed inside the hub", row.id)
        row.attempts = attempts_before
        if result is not None and result[0] is not None and result[0].status == SendLog.Status.SENT:
            _record_sent(row, result)  # the server has it: never send it again
        else:
            _abandon(row)


def _record_sent(row: SendLog, result: tuple) -> None:
    """The server accepted the message but recording that failed (a locked or lost
    database): try again for a while rather than let it go out twice."""
    outcome, server = result[0], result[1]
    for wait in (0.5, 2, 5, 10):
        time.sleep(wait)
        try:
            SendLog.objects.filter(pk=row.id, status=SendLog.Status.SENDING, claim_token=row.claim_token).update(
                status=SendLog.Status.SENT, sent_at=timezone.now(), smtp_server=server,
                smtp_code=outcome.smtp_code, smtp_reply=outcome.smtp_reply[:4000],
                attempts=row.attempts + 1, error="", next_attempt_at=None)
            return
        except Exception:
            log.exception("recording SendLog %s as sent failed; trying again", row.id)
    # Still no database: leave the row `sending`; the sweeper retries it (at-least-once).


def _release(log_ids: list[int]) -> None:
    """Give claimed, untried rows back to the queue, for the next drain."""
    from .tasks import wake_workers

    SendLog.objects.filter(pk__in=log_ids, status=SendLog.Status.SENDING).update(
        status=SendLog.Status.QUEUED, claim_token="", claimed_at=None)
    wake_workers()


def _abandon(row: SendLog) -> None:
    """An attempt that crashed inside the hub: counted, and retried by the schedule (so a
    message that crashes every time ends `failed`). Never raises."""
    try:
        _abandon_one(row, "internal error during delivery (see the worker log)", retry_now=False)
    except Exception:
        log.exception("could not record the failed delivery of SendLog %s; the sweeper will retry it", row.id)


def abandon_rows(rows: list[SendLog], error: str, retry_now: bool = False) -> None:
    for row in rows:
        _abandon_one(row, error, retry_now)


def _abandon_one(row: SendLog, error: str, retry_now: bool) -> None:
    now = timezone.now()
    attempts = row.attempts + 1
    delay = _retry_delay(row, attempts, now)
    if delay is not None and retry_now:
        delay = 0
    if delay is None:
        changes = {"status": SendLog.Status.FAILED, "next_attempt_at": None, "error": f"gave up: {error}"}
    else:
        changes = {"status": SendLog.Status.RETRYING, "next_attempt_at": now + timedelta(seconds=delay),
                   "error": f"{error}; will retry"}
    SendLog.objects.filter(pk=row.id, status=SendLog.Status.SENDING, claim_token=row.claim_token).update(
        attempts=attempts, claim_token="", **changes)
