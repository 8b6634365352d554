"""The receiver of hub.events that keeps the counters (models.Tally, models.Failure).

It runs on the delivery hot path, inside the transaction that records the outcome, once per
recipient: so it is one statement for a sent recipient (two for a failed one: the counter
and the failure row). What keeps it cheap (bench/stats_reports.py measures it):
- each statement reads what it needs from the SendLog row by primary key (account through
  the app, campaign, marker, quota charged, status, created time) in an INSERT ... SELECT,
  so the receiver reads nothing first;
- one statement text per (kind, failure type), built once per process, naming only the
  counters it adds to (the others take their database default, 0), so the upsert updates
  two to four columns, not eighteen;
- it runs on the DB-API cursor of Django's connection (the same connection, so the same
  transaction), with the placeholders converted once: Django's cursor wrapper re-parses
  the statement's placeholders with a regular expression on every call, which for this
  statement cost more than SQLite executing it;
- the local day, hour and start of day are computed once per minute.

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
KEY = ["account", "day", "hour", "campaign_id", "marker", "slot"]


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _col(model, name: str) -> str:
    return _q(model._meta.get_field(name).column)


def _placeholders(sql: str) -> str:
    """The DB-API driver's own placeholder style (sqlite3: qmark; MySQLdb: format)."""
    return sql.replace("%s", "?") if connection.vendor == "sqlite" else sql


def _source() -> str:
    s, a, acc = SendLog, App, Account
    return (f"FROM {_q(s._meta.db_table)} s JOIN {_q(a._meta.db_table)} a ON a.{_col(a, 'id')} = s.{_col(s, 'app')} "
            f"JOIN {_q(acc._meta.db_table)} acc ON acc.{_col(acc, 'id')} = a.{_col(a, 'account')} "
            f"WHERE s.{_col(s, 'id')} = %s")


@cache
def tally_statement(vendor: str, kind: str, failure_type: int | None) -> str:
    """INSERT ... SELECT ... upsert adding one recipient of `kind` (and `failure_type`).
    Parameters: day, hour, slot, [start of the day: failed only], log id."""
    t, s, acc = Tally, SendLog, Account
    campaign = f"COALESCE(s.{_col(s, 'campaign_id')}, 0)"
    marker = (f"CASE WHEN s.{_col(s, 'campaign_id')} IS NULL THEN '' "
              f"ELSE SUBSTR(s.{_col(s, 'subject')}, 1, {MARKER_CHARS}) END")
    charged = f"CASE WHEN s.{_col(s, 'quota_charged')} > 0 THEN 1 ELSE 0 END"
    rebated = (f"CASE WHEN s.{_col(s, 'status')} = '{SendLog.Status.FAILED}' AND s.{_col(s, 'quota_charged')} > 0 "
               f"AND NOT (acc.{_col(acc, 'quota_type')} = '{Account.QuotaType.DAILY}' "
               f"AND s.{_col(s, 'created_at')} < %s) THEN 1 ELSE 0 END")
    counts: list[tuple[str, str]] = [(kind, "1")]  # sent / failed / bounced / complained
    if failure_type is not None:
        counts.append((f"type_{failure_type}", "1"))
    if kind in (events.Kind.SENT, events.Kind.FAILED):
        counts.append(("charged", charged))
    if kind == events.Kind.FAILED:
        counts.append(("rebated", rebated))
    columns = ", ".join(_col(t, name) for name in KEY + [c for c, _v in counts])
    select = (f"SELECT a.{_col(App, 'account')}, %s, %s, {campaign}, {marker}, %s, "
              f"{', '.join(v for _c, v in counts)} {_source()}")
    table = _q(t._meta.db_table)
    if vendor == "mysql":
        update = ", ".join(f"{_col(t, c)} = {_col(t, c)} + VALUES({_col(t, c)})" for c, _v in counts)
        return f"INSERT INTO {table} ({columns}) {select} ON DUPLICATE KEY UPDATE {update}"
    # SQLite >= 3.24, PostgreSQL. (The WHERE of the SELECT keeps SQLite's parser from reading
    # ON CONFLICT as a join constraint.)
    conflict = ", ".join(_col(t, name) for name in KEY)
    update = ", ".join(f"{_col(t, c)} = {table}.{_col(t, c)} + excluded.{_col(t, c)}" for c, _v in counts)
    return f"INSERT INTO {table} ({columns}) {select} ON CONFLICT ({conflict}) DO UPDATE SET {update}"


@cache
def failure_statement(vendor: str) -> str:
    """Parameters: day, time, email, failure type, kind, log id."""
    f, s = Failure, SendLog
    columns = ", ".join(_col(f, n) for n in ("account", "day", "at", "campaign_id", "email", "failure_type", "kind",
                                             "log_id"))
    return (f"INSERT INTO {_q(f._meta.db_table)} ({columns}) SELECT a.{_col(App, 'account')}, %s, %s, "
            f"COALESCE(s.{_col(s, 'campaign_id')}, 0), %s, %s, %s, s.{_col(s, 'id')} {_source()}")


def local_hour(at: datetime) -> datetime:
    """The start of the local hour of `at` (settings.TIME_ZONE), aware."""
    return timezone.localtime(at).replace(minute=0, second=0, microsecond=0)


_minutes: dict[int, tuple] = {}


def _times(at: datetime) -> tuple:
    """(day, hour, start of the day) of `at`, adapted for the database; computed once a minute."""
    minute = int(at.timestamp()) // 60
    found = _minutes.get(minute)
    if found is None:
        ops, local = connection.ops, timezone.localtime(at)
        day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        found = (ops.adapt_datefield_value(local.date()), ops.adapt_datetimefield_value(local_hour(at)),
                 ops.adapt_datetimefield_value(day_start))
        if len(_minutes) > 1440:
            _minutes.clear()
        _minutes[minute] = found
    return found


def _failure_type(event: events.Event) -> int | None:
    value = event.data.get("failure_type")
    return value if isinstance(value, int) and value in TYPES else None


def count(event: events.Event) -> None:
    """Add one recipient's outcome (or later bounce or complaint) to the counters."""
    kind = event.kind
    if kind not in COUNTED or event.log_id is None:
        return
    vendor = connection.vendor
    failing = kind in (events.Kind.FAILED, events.Kind.BOUNCED)
    failure_type = _failure_type(event) if failing else None
    day, hour, day_start = _times(event.at)
    params = [day, hour, event.log_id % SLOTS]
    if kind == events.Kind.FAILED:
        params.append(day_start)
    params.append(event.log_id)
    connection.ensure_connection()
    cursor = connection.connection.cursor()  # the DB-API cursor: see the module docstring
    try:
        cursor.execute(_placeholders(tally_statement(vendor, str(kind), failure_type)), params)
        if failing:
            cursor.execute(_placeholders(failure_statement(vendor)),
                           [day, connection.ops.adapt_datetimefield_value(event.at), event.email[:254], failure_type,
                            str(kind), event.log_id])
    finally:
        cursor.close()


def on_event(sender, event: events.Event, **kwargs) -> None:
    count(event)
