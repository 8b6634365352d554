"""One message's delivery attempt: offer it to the app's servers in turn, then record the
outcome on its row (sent; retrying by the schedule; failed, with its failure type and hard
bounces suppressed) together with one DeliveryAttempt per server tried. A try that crashed
inside the hub is recorded too (abandon), so no claimed row is ever left in `sending`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from email.utils import getaddresses

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import events, queries, quota
from ..models import DeliveryAttempt, SendLog, SmtpServer, Suppression
from . import bounces, signing, throttle
from .message import SMTP_POLICY, ascii_address, build_message, envelope_recipients
from .policy import by_health, mark_server, retry_delay, too_old
from .render import NotRenderable
from .transport import ConnectionFailed, NoConnectionSlot, Outcome, pool

log = logging.getLogger(__name__)


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
    mark_server(server, exc.error)

class AllConnectionsBusy(Exception):
    """No server answered because every one had all its connections in use: the row goes
    back to the queue untried (hub.delivery.outbox takes it again)."""


def _try_servers(row: SendLog, servers: list[SmtpServer]) -> tuple[Outcome | None, SmtpServer | None, list[Try], float]:
    """Offer the message to each server in turn until one gives an answer about the
    message itself. Returns (outcome or None, server that answered, tries, throttle wait).
    Raises AllConnectionsBusy when no server had a free connection and none was tried."""
    tries: list[Try] = []
    throttle_wait = 0.0
    busy = 0
    for server in servers:
        started, t0 = timezone.now(), time.monotonic()
        session = None
        try:
            try:
                session = pool.get(server)
            except ConnectionFailed as exc:
                _connect_failed(tries, server, exc, started, t0)
                continue  # fail over to the next server
            except NoConnectionSlot:
                busy += 1
                continue  # all its connections are busy: another server may have room
            slot, wait = throttle.acquire(server)
            if wait:
                throttle_wait = wait if not throttle_wait else min(throttle_wait, wait)
                continue  # over this server's limit: another server may have room
            sender, rcpts = ascii_address(server.sender), envelope_recipients(row)
            # Signed (DKIM, by a registered EDM signer) after the last change to its headers.
            data = signing.sign(row, build_message(row, server.sender).as_bytes(policy=SMTP_POLICY))
            reused = session.uses > 0
            outcome = session.send(sender, rcpts, data)
            if outcome.lost_before_data and reused:
                # The pooled connection had died while idle: reconnect once and send now.
                pool.discard(session)
                session = None
                try:
                    session = pool.get(server)
                except (ConnectionFailed, NoConnectionSlot) as exc:
                    throttle.release(slot)
                    if isinstance(exc, NoConnectionSlot):
                        busy += 1
                        continue
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
            if not session.is_open:  # lost mid-transaction: don't reuse (the pool forgets it)
                mark_server(server, outcome.error)
            else:
                mark_server(server)
            tries.append(Try(server, result, outcome, started, ms))
            return outcome, server, tries, 0.0
        finally:
            if session is not None:
                pool.put(session)  # back for the next message (a closed one is dropped)
    if busy and not tries and not throttle_wait:
        raise AllConnectionsBusy()
    return None, None, tries, throttle_wait

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
            delay = retry_delay(row, row.attempts, now)
            if throttle_wait and delay is not None:
                delay = min(delay, throttle_wait)
        else:
            delay = None if too_old(row, now) else throttle_wait
        if delay is None:
            row.status = SendLog.Status.FAILED
            why = "too old" if too_old(row, now) else f"{row.attempts} attempts"
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
        if row.status == SendLog.Status.FAILED:
            # Only here, after the claim-token UPDATE matched: the transition to failed
            # happens once, and so does the refund of what the message took (hub.quota).
            quota.refund_message(row.app_id, row.quota_charged, row.created_at)
        _suppress_hard_bounces(row, outcome)
        if row.status in (SendLog.Status.SENT, SendLog.Status.FAILED):
            _emit_outcome(row, row.status, now)

def _emit_outcome(row: SendLog, status: str, at) -> None:
    """The final state, told to hub.events' receivers (inside the recording transaction):
    one event per envelope recipient; a recipient the server refused while it took the
    others is `failed` with its own reply."""
    if not events.happened.has_listeners():
        return
    refused = {addr.lower(): reply for addr, reply in (row.refused_recipients or {}).items()}
    try:
        recipients = envelope_recipients(row)
    except UnicodeError:
        # An address with no ASCII form (the row that crashed its delivery, hub/tests/
        # test_retry.py): told as written, or its failure would roll back with the event.
        recipients = [addr for text in (row.rcpt_to or row.to, row.cc, row.bcc) if text
                      for _name, addr in getaddresses([text])]
    for email in recipients:
        email = email.lower()
        if status == SendLog.Status.SENT and email not in refused:
            kind, data = events.Kind.SENT, {"smtp_code": row.smtp_code}
        elif email in refused:
            code, text = refused[email]
            kind, data = events.Kind.FAILED, {"failure_type": bounces.failure_type(code, text),
                                              "smtp_code": code, "reason": text[:500]}
        else:
            kind, data = events.Kind.FAILED, {"failure_type": row.failure_type, "smtp_code": row.smtp_code,
                                              "reason": (row.smtp_reply or row.error)[:500]}
        events.emit(events.Event(kind=kind, email=email, at=at, app_id=row.app_id, log_id=row.id,
                                 campaign_id=row.campaign_id, contact_id=row.contact_id, data=data))

def _suppress_hard_bounces(row: SendLog, outcome: Outcome) -> None:
    for addr, (code, text) in outcome.refused.items():
        if bounces.is_hard_bounce(code, text):
            try:
                with transaction.atomic():
                    Suppression.objects.create(app_id=row.app_id, email=addr.lower(), log=row,
                                               smtp_code=code, smtp_reply=text[:4000], reason="hard bounce")
            except IntegrityError:
                pass  # already suppressed: the first bounce is the one on record

def deliver_row(row: SendLog, servers: list[SmtpServer]) -> bool:
    """One row, on its own: whatever goes wrong with it is recorded on it and does not touch
    the other rows of the batch. Returns False when it went back to the queue untried (every
    server's connections were busy): the caller takes it again."""
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
    except AllConnectionsBusy:
        hand_back_untried([row])
        return False
    except NotRenderable as exc:
        # A campaign row whose campaign, template or contact is gone: it can never be built.
        _finish(row, Outcome(SendLog.Status.FAILED, error=f"not renderable: {exc}"), None, [], 0.0)
    except Exception:
        log.exception("delivery of SendLog %s failed inside the hub", row.id)
        row.attempts = attempts_before
        if result is not None and result[0] is not None and result[0].status == SendLog.Status.SENT:
            _record_sent(row, result)  # the server has it: never send it again
        else:
            abandon(row)
    return True

def hand_back_untried(rows: list[SendLog]) -> None:
    """Claimed rows that were never offered to a server go back to the queue as they were
    (no attempt counted), while this worker still holds them."""
    for row in rows:
        SendLog.objects.filter(pk=row.id, status=SendLog.Status.SENDING, claim_token=row.claim_token).update(
            status=SendLog.Status.QUEUED, claim_token="", claimed_at=None)

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
            row.smtp_code = outcome.smtp_code
            _emit_outcome(row, SendLog.Status.SENT, timezone.now())
            return
        except Exception:
            log.exception("recording SendLog %s as sent failed; trying again", row.id)
    # Still no database: leave the row `sending`; the sweeper retries it (at-least-once).

def abandon(row: SendLog) -> None:
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
    delay = retry_delay(row, attempts, now)
    if delay is not None and retry_now:
        delay = 0
    if delay is None:
        changes = {"status": SendLog.Status.FAILED, "next_attempt_at": None, "error": f"gave up: {error}"}
    else:
        changes = {"status": SendLog.Status.RETRYING, "next_attempt_at": now + timedelta(seconds=delay),
                   "error": f"{error}; will retry"}
    with transaction.atomic():
        taken_back = SendLog.objects.filter(pk=row.id, status=SendLog.Status.SENDING,
                                            claim_token=row.claim_token).update(attempts=attempts, claim_token="",
                                                                                **changes)
        if taken_back and changes["status"] == SendLog.Status.FAILED:
            quota.refund_message(row.app_id, row.quota_charged, row.created_at)  # once: as in _finish
            row.error = changes["error"]
            _emit_outcome(row, SendLog.Status.FAILED, now)
