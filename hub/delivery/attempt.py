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

from django.db import transaction
from django.utils import timezone

from .. import events, queries, quota
from ..models import DeliveryAttempt, SendLog, SmtpServer
from . import bounces, direct, groupcommit, suppression, throttle, verp
from .chain import Ahead, Chain
from .message import envelope_recipients, wire_bytes
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


def _try_servers(row: SendLog, servers: list[SmtpServer], rcpts: list[str] | None = None,
                 chain: Chain | None = None,
                 ahead: Ahead | None = None) -> tuple[Outcome | None, SmtpServer | None, list[Try], float]:
    """Offer the message to each server in turn until one gives an answer about the
    message itself. Returns (outcome or None, server that answered, tries, throttle wait).
    Raises AllConnectionsBusy when no server had a free connection and none was tried.
    `rcpts`: the envelope recipients still allowed (default: all of the row's). `chain`:
    where the next message to pipeline behind this one comes from (hub.delivery.chain);
    `ahead`: this row's envelope, already on the wire of its first server's session."""
    rcpts = envelope_recipients(row) if rcpts is None else rcpts
    tries: list[Try] = []
    throttle_wait = 0.0
    busy = 0
    built: dict[str, bytes] = {}  # signed message by the server's sender (its From fallback)
    if ahead is not None:
        built[ahead.server.sender] = ahead.data
        if not servers or servers[0].pk != ahead.server.pk:
            ahead.drop()  # (its server failed meanwhile: the row goes the usual way)
    for server in servers:
        if server.is_direct:
            # Straight to the recipients' MX hosts (hub.delivery.direct): it answers for the
            # message, so no server after it is tried.
            outcome, host_tries, wait = direct.deliver(row, server, rcpts)
            tries += [Try(server, t.result, t.outcome, t.started_at, t.duration_ms) for t in host_tries]
            if outcome.status == SendLog.Status.SENT:
                mark_server(server)  # its health: delivering (a destination's trouble is not the server's)
            return outcome, server, tries, wait
        started, t0 = timezone.now(), time.monotonic()
        carried = ahead if ahead is not None and ahead.session is not None and ahead.server.pk == server.pk else None
        ahead = None  # (the first server only)
        if carried is not None:
            started, t0 = carried.started, carried.t0
        # Built and signed (DKIM, by a registered EDM signer, after the last change to its
        # headers) BEFORE a connection is taken: a session is held for its round trips, not
        # also for the build, which under a busy GIL takes a thread several times its CPU.
        # (Measured at 30 ms: no change in rate at 40 or 160 connections, within noise.)
        data = built.get(server.sender)
        if data is None:
            data = built[server.sender] = wire_bytes(row, server.sender)
        session = None
        try:
            if carried is not None:
                # Our envelope went out behind the previous message: its session, its slot.
                session, slot, sender = carried.session, carried.throttle_slot, carried.sender
                carried.session = carried.throttle_slot = None
            else:
                try:
                    session = pool.get(server, bulk=bool(row.priority))  # campaign rows give way
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
                # MAIL FROM: the server's sender, or a signed VERP bounce address (hub.delivery.verp).
                sender = verp.envelope_sender(row, server)
            reused = session.uses > 0
            follow = chain.follower(row, server, session) if chain is not None else None
            outcome = session.send(sender, rcpts, data, follow)
            if outcome.lost_before_data and reused:
                # The pooled connection had died while idle: reconnect once and send now.
                pool.discard(session)
                session = None
                try:
                    session = pool.get(server, bulk=bool(row.priority))
                except (ConnectionFailed, NoConnectionSlot) as exc:
                    throttle.release(slot)
                    if isinstance(exc, NoConnectionSlot):
                        busy += 1
                        continue
                    _connect_failed(tries, server, exc, started, t0)
                    continue  # the server is gone: fail over
                follow = chain.follower(row, server, session) if chain is not None else None
                outcome = session.send(sender, rcpts, data, follow)
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
                # Back for the next message (a closed one is dropped), or on to the row whose
                # envelope it carries now (hub.delivery.chain).
                if chain is not None:
                    chain.hand_on(session)
                else:
                    pool.put(session)
    if busy and not tries and not throttle_wait:
        raise AllConnectionsBusy()
    return None, None, tries, throttle_wait


def _finish(row: SendLog, outcome: Outcome | None, server: SmtpServer | None, tries: list[Try],
            throttle_wait: float) -> None:
    now = timezone.now()
    if outcome is None:
        # No server answered about the message: all unreachable, or all over their limits.
        last = tries[-1].outcome if tries else None
        outcome = last or Outcome(SendLog.Status.FAILED, error="waiting for the SMTP servers' send limits")
        outcome.transient = True
    # A direct delivery that only waited for its destinations ("too many", paused) counts no attempt.
    counted = bool(tries) and outcome.counts_attempt
    if counted:
        row.attempts += 1
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
        if counted:
            delay = retry_delay(row, row.attempts, now)
            if throttle_wait and delay is not None:
                delay = min(delay, throttle_wait)
        else:
            delay = None if too_old(row, now) else throttle_wait
        if delay is None:
            row.status = SendLog.Status.FAILED
            why = "too old" if too_old(row, now) else f"{row.attempts} attempts"
            row.error = f"gave up after {why}: {outcome.error}"[:4000]
            if outcome.partly_sent:
                # Direct delivery: other recipients have the message, so it was sent; the
                # ones given up on are refused recipients with the last reply.
                row.status, row.sent_at = SendLog.Status.SENT, now
                for rcpt in outcome.pending or ():
                    row.refused_recipients[rcpt] = [outcome.smtp_code or 451, (outcome.smtp_reply or row.error)[:500]]
        else:
            row.status = SendLog.Status.RETRYING
            row.next_attempt_at = now + timedelta(seconds=delay)
    if row.status == SendLog.Status.FAILED:
        row.failure_type = bounces.failure_type(outcome.smtp_code, outcome.smtp_reply or outcome.error)
    fields = ["status", "attempts", "from_email", "smtp_code", "smtp_reply", "error",
              "refused_recipients", "next_attempt_at", "failure_type", "sent_at"]
    # Direct delivery, part of the recipients done: the others' outcomes are told now, and the
    # row keeps only the recipients still to deliver (its envelope for the next attempt).
    told_now: list[str] = []
    if outcome.pending is not None and row.status == SendLog.Status.RETRYING:
        told_now = [r for r in envelope_recipients(row) if r not in set(outcome.pending)]
        if told_now:  # (nothing settled: the envelope stays as it is)
            row.rcpt_to = ", ".join(outcome.pending)
            fields.append("rcpt_to")
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

    def record_outcome() -> None:
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
        elif told_now:
            _emit_outcome(row, SendLog.Status.SENT, now, told_now)

    # One transaction, shared with the outcomes other delivery threads of this process
    # record meanwhile (hub.delivery.groupcommit says why); returns once it is committed.
    groupcommit.outcomes.run(record_outcome)

def _emit_outcome(row: SendLog, status: str, at, recipients: list[str] | None = None) -> None:
    """The final state, told to hub.events' receivers (inside the recording transaction):
    one event per envelope recipient (or per one of `recipients`: those a direct delivery
    settled while others wait); a recipient the server refused while it took the
    others is `failed` with its own reply."""
    if not events.happened.has_listeners():
        return
    refused = {addr.lower(): reply for addr, reply in (row.refused_recipients or {}).items()}
    for email in _event_recipients(row) if recipients is None else recipients:
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

def _event_recipients(row: SendLog) -> list[str]:
    """The envelope recipients as sent, or, for an address that has no ASCII form (a row
    whose delivery crashed on it), as written: this runs inside the transaction that records
    the outcome, and raising here would roll the outcome back and leave the row `sending`."""
    try:
        return envelope_recipients(row)
    except UnicodeError:
        texts = (row.rcpt_to,) if row.rcpt_to else (row.to, row.cc, row.bcc)
        return [addr for text in texts if text for _name, addr in getaddresses([text])]

def _suppress_hard_bounces(row: SendLog, outcome: Outcome) -> None:
    """The account's suppression policy (hub.delivery.suppression) for each refused
    recipient: hard bounces at once, soft ones counted. Only failures pay for this."""
    refused = [(addr, code, text) for addr, (code, text) in outcome.refused.items()
               if code is not None and not text.startswith(bounces.SUPPRESSED_PREFIX)]
    if (not refused and row.status == SendLog.Status.FAILED and outcome.smtp_code is not None
            and not outcome.transient and not outcome.error.startswith("sender refused")):
        # Refused after DATA (Yahoo: "552 ... mailbox not found"): with one recipient, the
        # refusal is that recipient's. (A refused MAIL FROM is about the sender: never.)
        rcpts = envelope_recipients(row)
        if len(rcpts) == 1:
            refused = [(rcpts[0], outcome.smtp_code, outcome.smtp_reply)]
    if not refused:
        return
    account_id = suppression.account_of_app(row.app_id)
    if account_id is None:
        return
    pol = None
    final = row.status != SendLog.Status.RETRYING  # a soft bounce counts once, when it is final
    for addr, code, text in refused:
        kind, hard = bounces.failure_type(code, text), bounces.is_hard_bounce(code, text)
        if not (hard or (final and bounces.is_soft_bounce(kind))):
            continue
        pol = pol or suppression.policy(account_id)
        suppression.record_failure(account_id, addr, kind, hard=hard, app_id=row.app_id, log_id=row.id,
                                   smtp_code=code, reply=text, pol=pol)


def deliver_row(row: SendLog, servers: list[SmtpServer], chain: Chain | None = None) -> bool:
    """One row, on its own: whatever goes wrong with it is recorded on it and does not touch
    the other rows of the batch. Returns False when it went back to the queue untried (every
    server's connections were busy): the caller takes it again. With a `chain` (a crew
    thread's), the next row may be pipelined behind this one (hub.delivery.chain), and this
    row may be the one whose envelope is already on the wire."""
    attempts_before = row.attempts
    result = None
    ahead = chain.claim_ahead(row) if chain is not None else None
    try:
        rcpts, dropped = (ahead.rcpts, ahead.dropped) if ahead is not None else suppression.suppressed_now(row)
        if dropped and not rcpts:
            # Every recipient was suppressed since the message was accepted: nothing is sent.
            reason = next(iter(dropped.values()))[1]  # starts with bounces.SUPPRESSED_PREFIX: type 6 or 7
            outcome = Outcome(SendLog.Status.FAILED, error=f"{reason} (every recipient was suppressed after "
                                                           "the message was accepted; nothing was sent)",
                              refused=dropped)
            result = (outcome, None, [], 0.0)
        elif not servers:
            # Servers were disabled after the message was accepted: wait for an admin.
            outcome = Outcome(SendLog.Status.FAILED, error="no enabled SMTP server for this app", transient=True)
            result = (outcome, None, [], 60.0)
        else:
            # Health seen earlier in this batch counts: a server that just failed goes last.
            result = _try_servers(row, by_health(servers), rcpts, chain, ahead)
            if dropped and result[0] is not None:
                result[0].refused = {**dropped, **result[0].refused}
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
    finally:
        if ahead is not None:
            ahead.drop()  # whatever of it was not used (an error before its send): closed, freed
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
