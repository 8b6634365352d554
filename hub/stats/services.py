"""The statistics services both APIs and the admin call (V28 2.2-2.6): every report is a SUM
over the counter rows (models.Tally) its key selects, or an indexed read of the failure rows;
none counts SendLog rows (2.6, the send log itself, reads one page of them).

Tenancy: every function takes the acting account and filters by it; a campaign (task) id or
batch number of another account is NotFound, the same answer as one that does not exist.
"Statistics task id" (V28 2.3 `task_id`, 2.4 `task_id`) is the campaign id (send_id): see
docs/statistics.md."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import connection
from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Collate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub.campaigns.models import Campaign
from hub.mailtemplates.models import Template
from hub.models import Account, SendLog

from .counting import COUNTS
from .models import TYPES, Failure, Tally

MARKER = re.compile(r"^\[campaign (\d+)\] template (\d+) subject (\d+)$")  # hub.campaigns.dispatch.marker
MAX_DAYS = 366  # the longest date range of 2.4 (an XML document built in memory); exports stream, uncapped
MAILLOG_LIMIT_DEFAULT, MAILLOG_LIMIT_MAX = 100, 500

# V28 (a)6: the names `type` accepts, and each type's description as the reference prints it
# (2.3.1 `error_type_dec`: always this Chinese text, whatever the language, as clients key on it).
TYPE_NAMES = {"not_exist": 1, "over_quota": 2, "user_reject": 3, "invalid_addr": 8, "format_error": 9, "all": -1}
TYPE_TEXT = {1: "邮箱不存在", 2: "邮箱空间满", 3: "用户拒收", 4: "垃圾内容邮件", 5: "拒绝投递",
             6: "地址是黑名单", 7: "投诉地址", 8: "无效地址", 9: "格式错误", 10: "连接异常"}


class StatsError(Exception):
    """A refusal: `code` for the APIs (param_error, not_exist), nothing was read or written."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        self.code, self.message, self.http_status = code, str(message), http_status
        super().__init__(self.message)


def not_found(message=None) -> StatsError:
    return StatsError("not_exist", message or _("task not found"), 404)


# --- counts ---------------------------------------------------------------------------------

@dataclass
class Counts:
    sent: int = 0
    failed: int = 0
    types: dict[int, int] = field(default_factory=dict)
    charged: int = 0
    rebated: int = 0
    bounced: int = 0
    complained: int = 0

    @property
    def attempted(self) -> int:
        """Recipients with a final delivery outcome (sent or failed)."""
        return self.sent + self.failed

    @property
    def net(self) -> int:
        """Quota really taken: charged minus given back."""
        return self.charged - self.rebated

    def t(self, n: int) -> int:
        return self.types.get(n, 0)

    def add(self, other: Counts) -> Counts:
        types = {n: self.t(n) + other.t(n) for n in TYPES if self.t(n) or other.t(n)}
        return Counts(self.sent + other.sent, self.failed + other.failed, types, self.charged + other.charged,
                      self.rebated + other.rebated, self.bounced + other.bounced, self.complained + other.complained)

    @classmethod
    def from_row(cls, row: dict, prefix: str = "n_") -> Counts:
        v = {c: int(row.get(prefix + c) or 0) for c in COUNTS}
        return cls(v["sent"], v["failed"], {n: v[f"type_{n}"] for n in TYPES if v[f"type_{n}"]}, v["charged"],
                   v["rebated"], v["bounced"], v["complained"])


def _sums(prefix: str = "n_", where: Q | None = None) -> dict:
    # Aliases may not be the fields' own names (Django refuses Sum("sent") AS sent).
    return {prefix + c: Sum(c, filter=where) for c in COUNTS}


def total(rows: QuerySet) -> Counts:
    return Counts.from_row(rows.aggregate(**_sums()))


def grouped(rows: QuerySet, *keys: str) -> list[tuple[tuple, Counts]]:
    out = rows.values(*keys).annotate(**_sums()).order_by(*keys)
    return [(tuple(r[k] for k in keys), Counts.from_row(r)) for r in out]


def tallies(account: Account) -> QuerySet:
    return Tally.objects.filter(account=account)


# --- selectors: dates and tasks -------------------------------------------------------------

def parse_date(value: str, name: str) -> date:
    """Strictly YYYY-MM-DD (2.3: "never 2012-3-2")."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value or ""):
        raise StatsError("param_error", _("%(name)s must be a date like 2012-03-02") % {"name": name})
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise StatsError("param_error", _("%(name)s is not a valid date") % {"name": name}) from None
    return check_day(day, name)


FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(9999, 12, 30)  # whole days in every time zone


def check_day(day: date, name: str = "date") -> date:
    """A day whose local midnight exists as an instant in every time zone."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise StatsError("param_error", _("%(name)s is not a valid date") % {"name": name})
    return day


def date_range(first: date | None, last: date | None, *, missing_is_today: bool,
               max_days: int | None = None) -> tuple[date, date]:
    """2.3 ((e) #4): a missing bound is today, and the two are put in order; 2.4: a single
    bound is that day alone. Both bounds included; at most `max_days` days when given."""
    if first is None and last is None:
        raise ValueError("no bound")
    if missing_is_today:
        today = timezone.localdate()
        first, last = first or today, last or today
    else:
        first, last = first or last, last or first
    first, last = min(first, last), max(first, last)
    if max_days is not None and (last - first).days >= max_days:
        raise StatsError("param_error", _("a date range may span at most %(days)s days") % {"days": max_days})
    return first, last


def campaign_by(account: Account, *, pk: int | None = None, ident: str = "") -> int:
    """The campaign id of the account's task `pk` (send_id, also the statistics task id) or
    batch number `ident`. A deleted campaign's id still answers while its counters exist."""
    if ident:
        found = Campaign.objects.filter(account=account, sn=ident).values_list("pk", flat=True).first()
        if found is None or (pk is not None and found != pk):
            raise not_found()
        return found
    if pk is None or pk <= 0:
        raise not_found()
    if Campaign.objects.filter(account=account, pk=pk).exists() or tallies(account).filter(campaign_id=pk).exists():
        return pk
    raise not_found()


def local_day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


# --- 2.2 daily statistic ----------------------------------------------------------------------

@dataclass
class DayStats:
    day: date
    all: Counts
    campaigns: Counts  # V28 "web send": the platform's tasks


def day_stats(account: Account, day: date) -> DayStats:
    row = tallies(account).filter(day=day).aggregate(**_sums(), **_sums("c_", Q(campaign_id__gt=0)))
    return DayStats(day, Counts.from_row(row), Counts.from_row(row, "c_"))


# --- 2.4 per-task statistics (stask) ------------------------------------------------------------

@dataclass
class TaskStats:
    campaign_id: int  # 0: the account's mail that is not a campaign's (API, SMTP)
    ident: str
    day: date | None
    counts: Counts
    # Recipients the campaign skipped before sending: suppressed or invalid addresses.
    invalid: int = 0


def _campaign_facts(account: Account, ids: set[int]) -> dict[int, tuple[str, date | None, int]]:
    facts = {}
    for pk, sn, started, send_time, skipped in Campaign.objects.filter(account=account, pk__in=ids).values_list(
            "pk", "sn", "time_start", "send_time", "skipped"):
        skipped = skipped or {}
        day = timezone.localdate(started or send_time) if (started or send_time) else None
        facts[pk] = (sn, day, int(skipped.get("suppressed", 0)) + int(skipped.get("invalid", 0)))
    return facts


def task_stats(account: Account, *, first: date | None = None, last: date | None = None,
               campaign_id: int | None = None) -> list[TaskStats]:
    """With a date range: one entry per (task, day) with outcomes in it (campaign 0 = the
    account's other mail), days ascending. With only a task: one entry over its whole life,
    dated on its start day. The skipped addresses count on the task's start day."""
    rows = tallies(account)
    if campaign_id is not None:
        rows = rows.filter(campaign_id=campaign_id)
    if first is None:
        whole = total(rows)
        facts = _campaign_facts(account, {campaign_id})
        sn, day, invalid = facts.get(campaign_id, ("", None, 0))
        return [TaskStats(campaign_id, sn, day, whole, invalid)]
    rows = rows.filter(day__gte=first, day__lte=last)
    entries = grouped(rows, "day", "campaign_id")
    facts = _campaign_facts(account, {pk for (_d, pk), _c in entries if pk})
    out = []
    for (day, pk), counts in entries:
        sn, started, invalid = facts.get(pk, ("", None, 0))
        out.append(TaskStats(pk, sn, day, counts, invalid if started == day else 0))
    return out


# --- 2.5 deduction ---------------------------------------------------------------------------------

@dataclass
class Deduction:
    account: Account
    counts: Counts


def deductions(account: Account, day: date, *, with_children: bool) -> list[Deduction]:
    """The day's quota taken per account: the acting account, and a manager's sub-accounts
    when it asks for itself (2.5's `company` names each)."""
    accounts = [account]
    if with_children and account.is_manager:
        accounts += list(Account.objects.filter(parent=account).order_by("pk"))
    by_account = {pk: c for (pk,), c in grouped(Tally.objects.filter(account__in=accounts, day=day), "account_id")}
    return [Deduction(a, by_account.get(a.pk, Counts())) for a in accounts]


# --- 2.3 failures ------------------------------------------------------------------------------------

def failure_type(value: str) -> int:
    """`type`: a number 1..10 or -1, or a name of (a)6; -1 = all."""
    value = (value or "").strip()
    if value in TYPE_NAMES:
        return TYPE_NAMES[value]
    if re.fullmatch(r"-?\d{1,2}", value) and (int(value) in TYPES or int(value) == -1):
        return int(value)
    raise StatsError("param_error", _("type must be 1..10, -1 or one of %(names)s") % {
        "names": ", ".join(TYPE_NAMES)})


def failures(account: Account, *, kind: int, first: date | None = None, last: date | None = None,
             campaign_id: int | None = None) -> QuerySet:
    rows = Failure.objects.filter(account=account)
    if first is not None:
        rows = rows.filter(day__gte=first, day__lte=last)
    if campaign_id is not None:
        rows = rows.filter(campaign_id=campaign_id)
    if kind != -1:
        rows = rows.filter(failure_type=kind)
    return rows


def failed_emails(rows: QuerySet, *, repeat: bool) -> Iterator[str]:
    """The addresses in failure order (repeat), or each once, sorted (the default)."""
    if repeat:
        return rows.order_by("id").values_list("email", flat=True).iterator(chunk_size=5000)
    return rows.values_list("email", flat=True).distinct().order_by("email").iterator(chunk_size=5000)


def failed_addresses(rows: QuerySet, *, repeat: bool) -> Iterator[tuple[str, int | None]]:
    """(email, failure type) in failure order (repeat) or once per address, sorted, with its
    first failure's type (de-duplicated, the default)."""
    if repeat:
        yield from rows.order_by("id").values_list("email", "failure_type").iterator(chunk_size=5000)
        return
    # Each address's first failure: the rows in (email, id) order, the first of each address
    # kept here (one query and a sort; a GROUP BY needs a second read for the type).
    last = None
    for email, kind in rows.order_by("email", "id").values_list("email", "failure_type").iterator(chunk_size=5000):
        if email != last:
            last = email
            yield email, kind


def failed_with_task(rows: QuerySet, *, repeat: bool) -> Iterator[tuple[str, int | None, int]]:
    """2.3.2: (email, type, task id); de-duplicated means each (email, type, task) once."""
    if repeat:
        return rows.order_by("id").values_list("email", "failure_type", "campaign_id").iterator(chunk_size=2000)
    return (rows.values_list("email", "failure_type", "campaign_id").distinct()
            .order_by("email", "campaign_id", "failure_type").iterator(chunk_size=2000))


# --- 2.6 the send log ---------------------------------------------------------------------------------

def _subjects(markers: set[str]) -> dict[str, str]:
    """Campaign row markers -> the template's subject (before personalization)."""
    parsed = {m: MARKER.match(m) for m in markers}
    ids = {int(g.group(2)) for g in parsed.values() if g}
    subjects = dict(Template.objects.filter(pk__in=ids).values_list("pk", "subjects"))
    out = {}
    for m, g in parsed.items():
        if g:
            options = subjects.get(int(g.group(2))) or []
            i = int(g.group(3)) - 1
            out[m] = options[i] if 0 <= i < len(options) else ""
    return out


def _local(dt: datetime | None) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%d %H:%M:%S") if dt else ""


def _to_is(rows: QuerySet, address: str) -> QuerySet:
    """Rows whose To is exactly `address`, case-insensitively, through the SendLog index
    `sendlog_to` (hub.models.sendlog.AddressIndex): SQLite's is COLLATE NOCASE, so the
    comparison must be too; MariaDB's collation is case-insensitive already."""
    if connection.vendor == "sqlite":
        return rows.annotate(to_key=Collate("to", "nocase")).filter(to_key=address)
    return rows.filter(to=address)


def mail_log(account: Account, day: date, *, mail_to: str = "", page: int = 1,
             limit: int = MAILLOG_LIMIT_DEFAULT) -> tuple[list[dict], bool]:
    """One page of the messages the account's apps had accepted on `day` (local), in
    (created_at, id) order, and whether there are more. `mail_to`: only messages whose To is
    that one address (case-insensitive; docs/statistics.md "2.6 mail_to")."""
    start = local_day_start(check_day(day))
    app_ids = list(account.apps.values_list("pk", flat=True))
    # `app_id + 0`: without it SQLite's planner (no statistics) walks the (app, id) index and
    # sorts the whole day's rows (1 s at 1M); with it the (created_at, id, app, status) index
    # gives the day's rows in order, already filtered by app, and the page stops after
    # `limit`. With `mail_to` the planner takes the (to, created_at) index instead.
    rows = SendLog.objects.annotate(app_key=F("app_id") + 0).filter(
        app_key__in=app_ids, created_at__gte=start, created_at__lt=start + timedelta(days=1))
    if mail_to:
        rows = _to_is(rows, mail_to)
    fields = ("id", "created_at", "sent_at", "from_email", "to", "cc", "subject", "status", "smtp_code", "smtp_reply",
              "error", "failure_type", "campaign_id", "attempts", "message_id", "source")
    # The page's ids first, from the index alone (a deep page skips index entries, not rows),
    # then those rows.
    ids = list(rows.order_by("created_at", "id").values_list("id", flat=True)[(page - 1) * limit: page * limit + 1])
    more = len(ids) > limit
    ids = ids[:limit]
    by_id = {r["id"]: r for r in SendLog.objects.filter(pk__in=ids).values(*fields)}
    found = [by_id[pk] for pk in ids if pk in by_id]
    subjects = _subjects({r["subject"] for r in found if r["campaign_id"]})
    items = []
    for r in found:
        items.append({
            "id": r["id"], "time": _local(r["created_at"]), "send_time": _local(r["sent_at"]),
            "from": r["from_email"], "to": r["to"], "cc": r["cc"],
            "subject": subjects.get(r["subject"], "") if r["campaign_id"] else r["subject"],
            "status": r["status"], "smtp_code": r["smtp_code"], "result": (r["smtp_reply"] or r["error"])[:500],
            "error_type": r["failure_type"], "task_id": r["campaign_id"] or 0, "attempts": r["attempts"],
            "message_id": r["message_id"], "source": r["source"]})
    return items, more
