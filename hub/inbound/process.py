"""What a bounce or complaint report does: find the message it is about, then for each
recipient it names record a Report, the recipient's outcome and failure type on the SendLog
row, the account's suppression policy (hub.delivery.suppression) and a hub.events event
(`bounced` with failure_type / reason / hard, `complained` with feedback_type).

Matching, strongest first (docs/bounces.md):
1. the VERP address it was sent to (the listener's RCPT, signed: hub.delivery.verp), or one
   found in the returned message's Return-Path / the ARF Original-Mail-From;
2. the returned message's X-SMTPHub-Log-ID (with its X-SMTPHub-App-ID and Message-ID, when
   present, agreeing with the row);
3. its Message-ID.
A report from an IMAP mailbox only ever matches messages of that mailbox's account; a
recipient must be one of the matched message's envelope recipients (a DSN naming anyone
else changes nothing). A report processed twice (unique log/recipient/kind) counts once."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from hub import events
from hub.delivery import bounces, suppression, verp
from hub.delivery.message import envelope_recipients
from hub.models import FailureType, SendLog

from . import dsn
from .models import BounceMailbox, Report

log = logging.getLogger(__name__)

_ROW_FIELDS = ("id", "app_id", "app__account_id", "status", "to", "cc", "bcc", "rcpt_to", "message_id",
               "refused_recipients", "campaign_id", "contact_id", "failure_type")


def _row(account_id: int | None, **lookup) -> SendLog | None:
    qs = SendLog.objects.filter(**lookup)
    if account_id is not None:
        qs = qs.filter(app__account_id=account_id)
    return qs.select_related("app").only(*_ROW_FIELDS).order_by("-id").first()


def match(parsed: dsn.Parsed, verp_log_id: int | None, account_id: int | None) -> tuple[SendLog | None, str]:
    """The SendLog row the report is about and how it was found ("" when none)."""
    if verp_log_id is not None:
        row = _row(account_id, pk=verp_log_id)
        if row is not None:
            return row, "verp"
    for addr in parsed.return_paths:
        log_id = verp.parse(addr)
        if log_id is not None and (row := _row(account_id, pk=log_id)) is not None:
            return row, "verp"
    if parsed.log_id is not None:
        row = _row(account_id, pk=parsed.log_id)
        if row is not None and (parsed.app_id is None or parsed.app_id == row.app_id) and (
                not parsed.message_id or not row.message_id or parsed.message_id == row.message_id):
            return row, "header"
    if parsed.message_id:
        row = _row(account_id, message_id=parsed.message_id)
        if row is not None:
            return row, "message-id"
    return None, ""


def process(raw: bytes, *, verp_log_id: int | None = None, mailbox: BounceMailbox | None = None) -> list[Report]:
    """Parse one inbound message and act on it. Returns the Reports recorded (none for an
    "other" message such as an auto-reply; unmatched ones are recorded without effect)."""
    parsed = dsn.parse(raw)
    if parsed.kind == "other":
        return []
    account_id = mailbox.account_id if mailbox is not None else None
    row, matched_by = match(parsed, verp_log_id, account_id)
    source = Report.Source.IMAP if mailbox is not None else Report.Source.SMTP
    if row is None:
        log.info("inbound: %s report matched no message (log %s, Message-ID %r)", parsed.kind, parsed.log_id,
                 parsed.message_id)
        return [Report.objects.create(account_id=account_id, kind=_kind(parsed, None), source=source,
                                      email=(parsed.recipients[0].email if parsed.recipients else "")[:254],
                                      mailbox=mailbox, feedback_type=parsed.feedback_type)]
    rcpts = [r.lower() for r in envelope_recipients(row)]
    done = []
    for rcpt in parsed.recipients:
        email = rcpt.email or (rcpts[0] if len(rcpts) == 1 else "")
        if email not in rcpts:
            log.info("inbound: report for log %s names %r, not one of its recipients: ignored", row.id, email)
            continue
        kind = _kind(parsed, rcpt)
        if kind is None:
            continue  # delivered / relayed / expanded: nothing to do
        report = _apply(row, rcpt, email, kind, parsed, matched_by, source, mailbox)
        if report is not None:
            done.append(report)
    return done


def _kind(parsed: dsn.Parsed, rcpt: dsn.Recipient | None) -> str | None:
    if parsed.kind == "complaint":
        return Report.Kind.COMPLAINT
    action = rcpt.action if rcpt is not None else "failed"
    if action == "failed":
        return Report.Kind.BOUNCE
    if action == "delayed":
        return Report.Kind.DELAY
    return None


def _apply(row: SendLog, rcpt: dsn.Recipient, email: str, kind: str, parsed: dsn.Parsed, matched_by: str,
           source: str, mailbox: BounceMailbox | None) -> Report | None:
    account_id = row.app.account_id
    text = " ".join(part for part in (rcpt.status, rcpt.diagnostic) if part) or "bounced (no reason given)"
    failure, hard = None, False
    if kind == Report.Kind.BOUNCE:
        failure = bounces.failure_type(rcpt.code, text)
        hard = bounces.is_hard_bounce(rcpt.code, text)
    elif kind == Report.Kind.COMPLAINT:
        failure = FailureType.COMPLAINT
    now = timezone.now()
    try:
        with transaction.atomic():
            report = Report.objects.create(
                account_id=account_id, kind=kind, source=source, email=email, log_id=row.id, matched_by=matched_by,
                failure_type=failure, hard=hard, status=rcpt.status[:20], diagnostic=rcpt.diagnostic[:4000],
                feedback_type=parsed.feedback_type, mailbox=mailbox, received_at=now)
            if kind == Report.Kind.BOUNCE:
                _record_bounce(row, email, rcpt, text, failure, hard)
                suppression.record_failure(account_id, email, failure, hard=hard, app_id=row.app_id, log_id=row.id,
                                           smtp_code=rcpt.code, reply=text)
                _emit(events.Kind.BOUNCED, row, email, account_id, now,
                      {"failure_type": failure, "reason": text[:500], "hard": hard})
            elif kind == Report.Kind.COMPLAINT:
                suppression.record_complaint(account_id, email, app_id=row.app_id, log_id=row.id,
                                             feedback_type=parsed.feedback_type)
                _emit(events.Kind.COMPLAINED, row, email, account_id, now, {"feedback_type": parsed.feedback_type})
    except IntegrityError:
        log.info("inbound: %s for log %s / %s already processed", kind, row.id, email)
        return None
    return report


def _record_bounce(row: SendLog, email: str, rcpt: dsn.Recipient, text: str, failure: int, hard: bool) -> None:
    """The recipient's outcome on the row: refused, with the report's reply; a message that
    had been accepted (`sent`) whose every recipient bounced ends `failed` with the type.
    (No quota refund: the message was delivered to the next hop; docs/bounces.md.)"""
    refused = dict(row.refused_recipients or {})
    refused[email] = [rcpt.code, text[:4000]]
    changes: dict = {"refused_recipients": refused}
    all_refused = {r.lower() for r in envelope_recipients(row)} <= {k.lower() for k in refused}
    if row.status == SendLog.Status.SENT and all_refused:
        changes.update(status=SendLog.Status.FAILED, failure_type=failure,
                       error=f"bounced after delivery: {text}"[:4000])
    SendLog.objects.filter(pk=row.id, status=row.status).update(**changes, updated_at=timezone.now())
    row.refused_recipients = refused


def _emit(kind: events.Kind, row: SendLog, email: str, account_id: int, at, data: dict) -> None:
    events.emit(events.Event(kind=kind, email=email, at=at, app_id=row.app_id, account_id=account_id, log_id=row.id,
                             campaign_id=row.campaign_id, contact_id=row.contact_id, data=data))
