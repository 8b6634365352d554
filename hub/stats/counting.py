"""The receiver of hub.events that keeps the counters (models.Tally, models.Failure).

It runs on the delivery hot path, inside the transaction that records the outcome, once per
recipient: so it is one prepared statement for a sent recipient (two for a failed one: the
counter and the failure row), plain SQL built once per process (the ORM's compiling would
cost more than the statement; see hub.queries). Each statement reads what it needs from
the SendLog row by primary key (account through the app, campaign, marker, quota charged,
status, created time) in an INSERT ... SELECT, so the receiver reads nothing first.

Quota, per recipient (hub.quota: one unit = one recipient): `charged` 1 when the message was
charged (quota_charged > 0); `rebated` 1 when the row failed and its refund applied (the
rule of hub.quota.refund_message: a `day` account gets nothing back once the day it was
charged on is over). A recipient refused while the server took the others is failed but
not rebated (the row is sent: nothing was given back).

Events without a SendLog row (log_id None) are not counted: nothing ties them to an
account's message (tracking and unsubscribes are the other apps' counters)."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from django.db import connection
from django.utils import timezone

from hub import events
from hub.models import Account, App, SendLog

from .models import SLOTS, TYPES, Failure, Tally

TYPE_COLUMNS = [f"type_{n}" for n in TYPES]
COUNTS = ["sent", "failed", *TYPE_COLUMNS, "charged", "rebated", "bounced", "complained"]
COUNTED = {events.Kind.SENT, events.Kind.FAILED, events.Kind.BOUNCED, events.Kind.COMPLAINED}
MARKER_CHARS = Tally._meta.get_field("marker").max_length


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _col(model, name: str) -> str:
    return _q(model._meta.get_field(name).column)


@cache
def _statements(vendor: str) -> dict[str, str]:
    t, s, a, acc = Tally, SendLog, App, Account
    source = (f"FROM {_q(s._meta.db_table)} s JOIN {_q(a._meta.db_table)} a ON a.{_col(a, 'id')} = s.{_col(s, 'app')} "
              f"JOIN {_q(acc._meta.db_table)} acc ON acc.{_col(acc, 'id')} = a.{_col(a, 'account')} "
              f"WHERE s.{_col(s, 'id')} = %s")
    campaign = f"COALESCE(s.{_col(s, 'campaign_id')}, 0)"
    marker = (f"CASE WHEN s.{_col(s, 'campaign_id')} IS NULL THEN '' "
              f"ELSE SUBSTR(s.{_col(s, 'subject')}, 1, {MARKER_CHARS}) END")
    charged = f"CASE WHEN %s = 1 AND s.{_col(s, 'quota_charged')} > 0 THEN 1 ELSE 0 END"
    rebated = (f"CASE WHEN %s = 1 AND s.{_col(s, 'status')} = '{SendLog.Status.FAILED}' "
               f"AND s.{_col(s, 'quota_charged')} > 0 AND NOT (acc.{_col(acc, 'quota_type')} = "
               f"'{Account.QuotaType.DAILY}' AND s.{_col(s, 'created_at')} < %s) THEN 1 ELSE 0 END")
    key = ["account", "day", "hour", "campaign_id", "marker", "slot"]
    columns = ", ".join(_col(t, name) for name in key + COUNTS)
    plain = ", ".join(["%s"] * (len(COUNTS) - 4))  # sent, failed, type_1..10
    select = (f"SELECT a.{_col(a, 'account')}, %s, %s, {campaign}, {marker}, %s, {plain}, {charged}, {rebated}, "
              f"%s, %s {source}")
    if vendor == "mysql":
        update = ", ".join(f"{_col(t, c)} = {_col(t, c)} + VALUES({_col(t, c)})" for c in COUNTS)
        tally = f"INSERT INTO {_q(t._meta.db_table)} ({columns}) {select} ON DUPLICATE KEY UPDATE {update}"
    else:  # SQLite >= 3.24, PostgreSQL
        conflict = ", ".join(_col(t, name) for name in key)
        update = ", ".join(f"{_col(t, c)} = {_q(t._meta.db_table)}.{_col(t, c)} + excluded.{_col(t, c)}"
                           for c in COUNTS)
        tally = f"INSERT INTO {_q(t._meta.db_table)} ({columns}) {select} ON CONFLICT ({conflict}) DO UPDATE SET {update}"
    f = Failure
    failure_columns = ", ".join(_col(f, n) for n in ("account", "day", "at", "campaign_id", "email", "failure_type",
                                                     "kind", "log_id"))
    failure = (f"INSERT INTO {_q(f._meta.db_table)} ({failure_columns}) "
               f"SELECT a.{_col(a, 'account')}, %s, %s, {campaign}, %s, %s, %s, s.{_col(s, 'id')} {source}")
    return {"tally": tally, "failure": failure}


def local_hour(at: datetime) -> datetime:
    """The start of the local hour of `at` (settings.TIME_ZONE), aware."""
    return timezone.localtime(at).replace(minute=0, second=0, microsecond=0)


def _day_start(at: datetime) -> datetime:
    return timezone.localtime(at).replace(hour=0, minute=0, second=0, microsecond=0)


def _failure_type(event: events.Event) -> int | None:
    value = event.data.get("failure_type")
    return value if isinstance(value, int) and value in TYPES else None


def count(event: events.Event) -> None:
    """Add one recipient's outcome (or later bounce or complaint) to the counters."""
    if event.kind not in COUNTED or event.log_id is None:
        return
    ops = connection.ops
    sql = _statements(connection.vendor)
    kind = event.kind
    failure_type = _failure_type(event) if kind in (events.Kind.FAILED, events.Kind.BOUNCED) else None
    types = [1 if failure_type == n else 0 for n in TYPES]
    outcome = 1 if kind in (events.Kind.SENT, events.Kind.FAILED) else 0
    day = timezone.localdate(event.at)
    params = [ops.adapt_datefield_value(day), ops.adapt_datetimefield_value(local_hour(event.at)),
              event.log_id % SLOTS, 1 if kind == events.Kind.SENT else 0, 1 if kind == events.Kind.FAILED else 0,
              *types, outcome, 1 if kind == events.Kind.FAILED else 0,
              ops.adapt_datetimefield_value(_day_start(event.at)),
              1 if kind == events.Kind.BOUNCED else 0, 1 if kind == events.Kind.COMPLAINED else 0, event.log_id]
    with connection.cursor() as cursor:
        cursor.execute(sql["tally"], params)
        if kind in (events.Kind.FAILED, events.Kind.BOUNCED):
            cursor.execute(sql["failure"], [ops.adapt_datefield_value(day), ops.adapt_datetimefield_value(event.at),
                                            event.email[:254], failure_type, str(kind), event.log_id])


def on_event(sender, event: events.Event, **kwargs) -> None:
    count(event)
