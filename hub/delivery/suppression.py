"""The suppression policy: which outcomes put an address on its ACCOUNT's suppression list.

- a hard bounce (bounces.HARD_TYPES on a permanent reply or DSN): at once;
- a complaint (ARF): at once;
- an unsubscribe: at once, for campaign mail only (`bulk_only`: transactional mail such as a
  password reset still reaches the address);
- soft bounces (bounces.SOFT_TYPES: mailbox full, refused by the recipient): after the
  account's `soft_bounce_limit` of them within `soft_bounce_days`.
Each switch and number is per account (hub.models.SuppressionPolicy; without a row, the
settings' defaults). Failures about the sender (reputation, RBL, rate limits, content,
connection) never count against a recipient.

Used by the delivery engine (synchronous replies), hub.inbound (DSNs, ARF reports,
unsubscribes) and the admin. Runs only on failures and reports, never per sent message;
the list itself is read at claim time (below: one query per app of a claimed batch)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import queries
from ..models import App, FailureType, SendLog, SoftBounce, Suppression, SuppressionPolicy
from . import bounces
from .message import envelope_recipients

Cause = Suppression.Cause


@dataclass(frozen=True)
class Policy:
    hard_bounces: bool = True
    complaints: bool = True
    unsubscribes: bool = True
    soft_bounce_limit: int = 3
    soft_bounce_days: int = 7


def policy(account_id: int) -> Policy:
    row = SuppressionPolicy.objects.filter(account_id=account_id).first()
    if row is None:
        return Policy(soft_bounce_limit=settings.HUB_SOFT_BOUNCE_LIMIT, soft_bounce_days=settings.HUB_SOFT_BOUNCE_DAYS)
    return Policy(row.hard_bounces, row.complaints, row.unsubscribes, row.soft_bounce_limit, row.soft_bounce_days)


def account_of_app(app_id: int) -> int | None:
    return App.objects.filter(pk=app_id).values_list("account_id", flat=True).first()


def suppress(account_id: int, email: str, cause: str, *, app_id: int | None = None, log_id: int | None = None,
             failure_type: int | None = None, smtp_code: int | None = None, smtp_reply: str = "",
             reason: str = "", bulk_only: bool = False) -> bool:
    """Put the address on the account's list (True when this made it so). An existing entry
    stays as it was, except that a full suppression replaces a campaign-only one."""
    email = email.strip().lower()
    fields = {"app_id": app_id, "log_id": log_id, "cause": cause, "failure_type": failure_type, "smtp_code": smtp_code,
                  "smtp_reply": smtp_reply[:4000], "reason": reason[:200], "bulk_only": bulk_only}
    try:
        with transaction.atomic():
            Suppression.objects.create(account_id=account_id, email=email, **fields)
            return True
    except IntegrityError:
        if not bulk_only:
            return bool(Suppression.objects.filter(account_id=account_id, email=email, bulk_only=True)
                        .update(**fields, created_at=timezone.now()))
        return False


def record_failure(account_id: int, email: str, kind: int | None, *, hard: bool, app_id: int | None = None,
                   log_id: int | None = None, smtp_code: int | None = None, reply: str = "",
                   pol: Policy | None = None) -> str | None:
    """A recipient's final failure (a refused RCPT/DATA or a DSN), already classified.
    Returns the cause it was suppressed for, or None."""
    pol = pol or policy(account_id)
    detail = {"app_id": app_id, "log_id": log_id, "failure_type": kind, "smtp_code": smtp_code, "smtp_reply": reply}
    if hard:
        if pol.hard_bounces and suppress(account_id, email, Cause.HARD_BOUNCE, reason="hard bounce", **detail):
            return Cause.HARD_BOUNCE
        return None
    if not bounces.is_soft_bounce(kind) or not pol.soft_bounce_limit:
        return None
    email = email.strip().lower()
    now = timezone.now()
    since = now - timedelta(days=pol.soft_bounce_days)
    SoftBounce.objects.filter(account_id=account_id, email=email, at__lt=since).delete()
    SoftBounce.objects.create(account_id=account_id, email=email, failure_type=kind, log_id=log_id, at=now)
    count = SoftBounce.objects.filter(account_id=account_id, email=email, at__gte=since).count()
    if count >= pol.soft_bounce_limit:
        reason = f"{count} soft bounces in {pol.soft_bounce_days} days"
        if suppress(account_id, email, Cause.SOFT_BOUNCE, reason=reason, **detail):
            return Cause.SOFT_BOUNCE
    return None


def record_complaint(account_id: int, email: str, *, app_id: int | None = None, log_id: int | None = None,
                     feedback_type: str = "abuse") -> bool:
    if not policy(account_id).complaints:
        return False
    return suppress(account_id, email, Cause.COMPLAINT, app_id=app_id, log_id=log_id,
                    failure_type=FailureType.COMPLAINT, reason=f"complaint ({feedback_type})"[:200])


def record_unsubscribe(account_id: int, email: str, how: str = "") -> bool:
    if not policy(account_id).unsubscribes:
        return False
    return suppress(account_id, email, Cause.UNSUBSCRIBE, bulk_only=True,
                    reason=f"unsubscribed ({how})" if how else "unsubscribed")


def remove(account_id: int, email: str) -> bool:
    """Allow the address again (and forget its soft bounces, so one more does not suppress it)."""
    email = email.strip().lower()
    SoftBounce.objects.filter(account_id=account_id, email=email).delete()
    return Suppression.objects.filter(account_id=account_id, email=email).delete()[0] > 0


# -- at claim time (the delivery engine) ------------------------------------------------------
def check_suppressions(rows: list[SendLog]) -> None:
    """The suppression list at claim time, one indexed query per app of a claimed batch
    (hub.delivery.outbox): each row carries its recipients' entries to suppressed_now."""
    by_app: dict[int, list[SendLog]] = {}
    for row in rows:
        by_app.setdefault(row.app_id, []).append(row)
    for app_id, app_rows in by_app.items():
        wanted = {row.pk: {r.lower() for r in recipients_or_none(row)} for row in app_rows}
        hits = queries.suppressions(app_id, set().union(*wanted.values()))
        for row in app_rows:
            row.suppressed_at_claim = {email: hits[email] for email in wanted[row.pk] if email in hits}


def recipients_or_none(row: SendLog) -> list[str]:
    try:
        return envelope_recipients(row)
    except UnicodeError:
        return []  # not deliverable anyway: deliver_row records why, and checks again then


def suppressed_now(row: SendLog) -> tuple[list[str], dict[str, list]]:
    """Re-check the suppression list at claim time (check_suppressions, or one indexed query
    here): a message accepted just before its recipient was suppressed must not go to them.
    Returns (the envelope recipients still allowed, {dropped recipient: [None, reason]})."""
    rcpts = envelope_recipients(row)
    hits = getattr(row, "suppressed_at_claim", None)
    if hits is None:
        hits = queries.suppressions(row.app_id, {r.lower() for r in rcpts})
    if not hits:
        return rcpts, {}
    campaign = row.campaign_id is not None  # campaign-only entries (unsubscribes) apply here
    blocked = {email: cause for email, (cause, bulk_only) in hits.items() if campaign or not bulk_only}
    kept = [r for r in rcpts if r.lower() not in blocked]
    dropped = {r: [None, f"{bounces.SUPPRESSED_PREFIX}{blocked[r.lower()]}"] for r in rcpts if r.lower() in blocked}
    return kept, dropped
