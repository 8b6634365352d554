"""Service period and quota of an account (V28 1.2): who may send today, and how much.

The rules, in short (docs/accounts.md has them in full):
- An account sends only while it is enabled, its service status is `enabled` and today lies
  within service_start..service_end (both inclusive, either may be empty). "Today" is the
  local date of settings.TIME_ZONE (Asia/Shanghai by default, as the V28 platform).
- One unit of quota = one recipient of a message (to + cc + bcc of an API send, the RCPT TOs
  of an SMTP submission), taken when the message is accepted, in the same transaction as its
  SendLog row, by one conditional UPDATE (exact under concurrency on SQLite and MariaDB).
- `unlimited` takes nothing; `all` takes from quota_available; `day` takes from today's
  allowance, which starts again at quota_total on each new day (quota_day is the day
  quota_available belongs to).
- A message that ends `failed` gives back what it took (SendLog.quota_charged), once: a `day`
  account only when it is still the day it was charged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import queries
from .models import Account, App, QuotaChange
from .refusals import Refusal

T = Account.QuotaType


def today() -> date:
    """The date quota days and service dates are counted in (settings.TIME_ZONE)."""
    return timezone.localdate()


def day_of(moment) -> date:
    return timezone.localdate(moment)


@dataclass(frozen=True)
class Terms:
    """What the send path needs to know about an app's account."""

    enabled: bool = True
    service_status: str = Account.ServiceStatus.ENABLED
    service_start: date | None = None
    service_end: date | None = None
    quota_type: str = T.UNLIMITED

    @property
    def metered(self) -> bool:
        return self.quota_type != T.UNLIMITED


def _as_date(value) -> date | None:
    # queries.app() hands over raw column values: SQLite gives dates as "YYYY-MM-DD".
    return date.fromisoformat(value[:10]) if isinstance(value, str) else value


def terms_of(app: App, fresh: bool = False) -> Terms:
    """The account terms of an app: from the columns queries.app() read with it (no query),
    else (an App from the ORM, or `fresh`) one read of the account."""
    names = queries.ACCOUNT_TERMS
    if not fresh and hasattr(app, names["quota_type"]):
        if getattr(app, names["quota_type"]) is None:  # no account (not saved through App.save)
            return Terms()
        return Terms(enabled=bool(getattr(app, names["enabled"])),
                     service_status=getattr(app, names["service_status"]),
                     service_start=_as_date(getattr(app, names["service_start"])),
                     service_end=_as_date(getattr(app, names["service_end"])),
                     quota_type=getattr(app, names["quota_type"]))
    if app.account_id is None:
        return Terms()
    row = Account.objects.filter(pk=app.account_id).values(*names).first()
    return Terms(**row) if row else Terms()


def check_terms(terms: Terms, day: date) -> None:
    """Refuse when the account may not send on `day`; nothing else is checked here."""
    if not terms.enabled:
        raise Refusal("account_disabled", "the account of this app is disabled")
    if terms.service_status != Account.ServiceStatus.ENABLED:
        raise Refusal("service_disabled", "the sending service of this account is disabled")
    if terms.service_start and day < terms.service_start:
        raise Refusal("service_not_started", f"the service starts on {terms.service_start.isoformat()}")
    if terms.service_end and day > terms.service_end:
        raise Refusal("service_expired", f"the service ended on {terms.service_end.isoformat()}")


def check_account(app: App) -> None:
    """Refuse when the app's account may not send today (read fresh: for SMTP MAIL, whose
    session may have logged in long ago)."""
    check_terms(terms_of(app, fresh=True), today())


def available_on(account: Account, day: date) -> int:
    """What a metered account may still send on `day` (its allowance if a new day)."""
    if account.quota_type == T.DAILY and account.quota_day != day:
        return account.quota_total
    return account.quota_available


def reserve(account_id: int, n: int, day: date | None = None) -> int:
    """Take n units of quota from the account for a message accepted on `day` (default today),
    or refuse (Refusal: account_disabled, service_*, quota_exhausted) having taken nothing.
    Returns what was taken: n, or 0 for an unlimited account. Call it inside the transaction
    that writes the message, so that a failure after it gives the quota back too."""
    if n < 0:
        raise ValueError("n must be 0 or more")
    day = day or today()
    # The UPDATE checks everything itself; only when it changed nothing is the account read
    # to say why. A top-up between the two makes the read find enough: then try again.
    for _attempt in range(3):
        if n and queries.consume_quota(account_id, n, day):
            return n
        account = Account.objects.filter(pk=account_id).first()
        if account is None:
            raise Refusal("account_disabled", f"no account {account_id}")
        check_terms(Terms(account.enabled, account.service_status, account.service_start, account.service_end,
                          account.quota_type), day)
        if account.quota_type == T.UNLIMITED or n == 0:
            return 0
        left = available_on(account, day)
        if left < n:
            raise Refusal("quota_exhausted", f"{n} recipient(s), {max(left, 0)} left"
                          + (" today" if account.quota_type == T.DAILY else ""))
    raise Refusal("quota_exhausted", "the quota changed while sending; try again")


def refund(account_id: int, n: int, charged_on: date | None = None) -> bool:
    """Give back n units taken on `charged_on` (default today). True when something was given
    back (not for unlimited, nor for a `day` account once that day is over)."""
    if n <= 0:
        return False
    now = today()
    return queries.refund_quota(n, account_id=account_id, charged_on=charged_on or now, today=now)


def refund_message(app_id: int, quota_charged: int, created_at) -> bool:
    """Give back what a message took (delivery, on its transition to failed: the caller's
    claim-token UPDATE makes that happen once). To the app's account, read in the same statement."""
    if quota_charged <= 0:
        return False
    return queries.refund_quota(quota_charged, app_id=app_id, charged_on=day_of(created_at), today=today())


def top_up(account_id: int, amount: int, *, note: str = "", user=None,
           reason: str = QuotaChange.Reason.TOPUP) -> tuple[Account, QuotaChange]:
    """Add `amount` to an account's quota bought and available (a negative amount takes away,
    reason "adjust"), atomically (F expressions), with its QuotaChange audit row. Returns the
    account as it is after, and the QuotaChange."""
    if amount == 0:
        raise ValueError("amount must not be 0")
    with transaction.atomic():
        changed = Account.objects.filter(pk=account_id).update(
            quota_total=F("quota_total") + amount, quota_available=F("quota_available") + amount)
        if not changed:
            raise Account.DoesNotExist(f"no account {account_id}")
        account = Account.objects.select_for_update().get(pk=account_id)
        change = QuotaChange.objects.create(account=account, delta=amount,
                                            quota_available_after=account.quota_available,
                                            reason=reason, note=note[:500], user=user)
    return account, change
