"""The few queries every send makes, in plain SQL.

Why not the ORM here: on the bench machine compiling a QuerySet costs 0.3-0.45 ms of CPU,
and running the same statement by hand 0.04 ms. A send makes five of them, which was most
of the API's time per request (see docs/performance.md). Everything else uses the ORM.
The SQL is the portable subset (SQLite, MariaDB/MySQL, PostgreSQL); table and column
names come from the models, so a renamed field breaks loudly in the tests, not silently.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache

from django.db import connection
from django.db.models import Model
from django.utils import timezone

from .models import Account, App, AppServer, DeliveryWakeup, SendLog, SmtpServer, Suppression


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


# Account column -> the attribute queries.app() sets on the App it returns (raw values: SQLite
# gives dates as text and booleans as 0/1; hub.quota.terms_of() reads them).
ACCOUNT_TERMS = {"enabled": "account_enabled", "service_status": "account_service_status",
                 "service_start": "account_service_start", "service_end": "account_service_end",
                 "quota_type": "account_quota_type"}


@cache
def _statements() -> dict[str, str]:
    """The read statements, built once per process."""
    s, l, acc = SmtpServer, AppServer, Account
    # The app with its account's service terms (hub.quota.Terms, read from the ACCOUNT_TERMS
    # attributes), so checking them costs the send nothing more than this one indexed read.
    terms = ", ".join(f"acc.{_column(acc, name)} AS {alias}" for name, alias in ACCOUNT_TERMS.items())
    return {
        "app": (f"SELECT a.*, {terms} FROM {_table(App)} a "
                f"LEFT JOIN {_table(acc)} acc ON acc.{_column(acc, 'id')} = a.{_column(App, 'account')} "
                f"WHERE a.{_column(App, 'id')} = %s"),
        "app_servers": (
            f"SELECT s.{_column(s, 'enabled')}, s.{_column(s, 'from_email')}, s.{_column(s, 'username')} "
            f"FROM {_table(l)} l JOIN {_table(s)} s ON s.{_column(s, 'id')} = l.{_column(l, 'server')} "
            f"WHERE l.{_column(l, 'app')} = %s ORDER BY l.{_column(l, 'priority')}, l.{_column(l, 'id')}"),
        # {marks}: one %s per address. Suppression is per account: the app's account's list,
        # read off its unique (account, email) index.
        "suppressed": (f"SELECT sp.{_column(Suppression, 'email')}, sp.{_column(Suppression, 'cause')}, "
                       f"sp.{_column(Suppression, 'bulk_only')} FROM {_table(Suppression)} sp "
                       f"JOIN {_table(App)} a ON a.{_column(App, 'account')} = sp.{_column(Suppression, 'account')} "
                       f"WHERE a.{_column(App, 'id')} = %s AND sp.{_column(Suppression, 'email')} IN ({{marks}})"),
    }


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def app(pk: int) -> App | None:
    """The App with this primary key (the AppID), or None. (raw() still applies each
    column's converters, e.g. SQLite's datetimes and booleans, to the App's own fields; the
    account's terms come as raw values in the ACCOUNT_TERMS attributes.)"""
    found = list(App.objects.raw(_statements()["app"], [pk]))
    return found[0] if found else None


def app_servers(app_id: int) -> list[tuple[bool, str, str]]:
    """(enabled, from_email, username) of the app's servers, primary first."""
    rows = _rows(_statements()["app_servers"], [app_id])
    return [(bool(enabled), from_email, username) for enabled, from_email, username in rows]


def suppressions(app_id: int, emails: set[str]) -> dict[str, tuple[str, bool]]:
    """{address: (cause, campaign mail only)} for those of these (lower-case) addresses on
    the suppression list of the app's account."""
    if not emails:
        return {}
    sql = _statements()["suppressed"].format(marks=", ".join(["%s"] * len(emails)))
    return {email: (cause, bool(bulk_only)) for email, cause, bulk_only in _rows(sql, [app_id, *sorted(emails)])}


def suppressed(app_id: int, emails: set[str], campaign: bool = False) -> list[str]:
    """Which of these (lower-case) addresses the app may not send to: on its account's
    suppression list (an unsubscribe, `bulk_only`, stops campaign mail only)."""
    return sorted(email for email, (_cause, bulk_only) in suppressions(app_id, emails).items()
                  if campaign or not bulk_only)


@cache
def _wakeup_pending_sql(flag: type[Model]) -> str:
    return f"SELECT 1 FROM {_table(flag)} WHERE {_column(flag, 'id')} = 1 AND {_column(flag, 'requested_at')} > %s"


def wakeup_pending_since(since: datetime, flag: type[Model] = DeliveryWakeup) -> bool:
    """Is a drain requested after `since` and not started yet (hub.delivery.outbox.wake_drain;
    `flag`: the outbox's wake-up row, the mail outbox's by default)?"""
    return bool(_rows(_wakeup_pending_sql(flag), [connection.ops.adapt_datetimefield_value(since)]))


# --- writes: statements built once per process from the model -----------------------------
# Model.save() and QuerySet.update() compile their SQL again for every row; the delivery
# worker writes each message's outcome as it goes (so a crash can repeat at most the
# message on the wire), and the API inserts every message. Values still go through each
# field's own pre_save / get_db_prep_save, exactly as save() and update() do. The models
# written here have no save() override and the hub connects no signals to them; keep it
# that way, or use the ORM for that model.

@cache
def _insert_statement(model: type[Model]) -> tuple[list, str]:
    fields = [f for f in model._meta.local_concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    return fields, f"INSERT INTO {_table(model)} ({columns}) VALUES ({marks})"


class Insert:
    """INSERT of a new model instance, prepared now (field values computed) and run later:
    inside a transaction, only the statement itself then holds SQLite's write lock."""

    def __init__(self, obj: Model):
        self.obj = obj
        fields, self.sql = _insert_statement(type(obj))
        self.params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]

    def run(self) -> None:
        """Set the object's primary key, as obj.save() would."""
        obj = self.obj
        if connection.vendor not in ("sqlite", "mysql"):
            obj.save()  # cursor.lastrowid is the new id only on these two
            return
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            obj.pk = connection.ops.last_insert_id(cursor, obj._meta.db_table, obj._meta.pk.column)
        obj._state.adding = False
        obj._state.db = connection.alias


def insert_many(objs: list[Model]) -> None:
    """INSERT several new instances of one model, as Insert(obj).run() each (their primary
    keys set), with each field's database value computed once per distinct value: a batch's
    rows share most of theirs (app, sender, status, defaults), and get_db_prep_save is a pure
    function of the value. Call inside a transaction. The models it is used for have no
    field whose pre_save does more than stamp auto_now (done here once for all rows)."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor not in ("sqlite", "mysql"):
        for obj in objs:
            Insert(obj).run()
        return
    fields, sql = _insert_statement(model)
    caches: list[dict] = [{} for _ in fields]
    # auto_now / auto_now_add: one instant for the whole statement (and one value to prepare).
    now = timezone.now()
    stamped = [f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    rows = []
    for obj in objs:
        for f in stamped:
            setattr(obj, f.attname, now)
        params = []
        for f, seen in zip(fields, caches, strict=True):
            value = getattr(obj, f.attname)
            try:
                prepared = seen[value]
            except KeyError:
                prepared = seen[value] = f.get_db_prep_save(value, connection)
            except TypeError:  # unhashable (a JSON object): cached only when empty, the usual case
                key = (type(value), "empty") if not value else None
                if key is None:
                    prepared = f.get_db_prep_save(value, connection)
                elif key in seen:
                    prepared = seen[key]
                else:
                    prepared = seen[key] = f.get_db_prep_save(value, connection)
            params.append(prepared)
        rows.append(params)
    table, pk = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.features.can_return_rows_from_bulk_insert:  # SQLite >= 3.35, MariaDB >= 10.5
            for start, end in _chunks(rows, fields):
                cursor.execute(_multi_insert(model, end - start), [p for params in rows[start:end] for p in params])
                # The ids of one statement's rows are allocated in row order (SQLite holds the
                # write lock; an auto-increment counts up within one statement), while the
                # order RETURNING lists them in is not specified: sorted, they are the rows'.
                ids = sorted(row[0] for row in cursor.fetchall())
                for obj, new_id in zip(objs[start:end], ids, strict=True):
                    obj.pk = new_id
                    obj._state.adding = False
                    obj._state.db = connection.alias
            return
        for obj, params in zip(objs, rows, strict=True):
            cursor.execute(sql, params)
            obj.pk = connection.ops.last_insert_id(cursor, table, pk)
            obj._state.adding = False
            obj._state.db = connection.alias


# One multi-row INSERT stays under SQLite's 32,766 bound parameters and well under MariaDB's
# max_allowed_packet (16 MiB by default): messages of a batch carry their bodies.
_MAX_PARAMS = 30_000
_MAX_CHUNK_BYTES = 4 * 1024 * 1024


def _chunks(rows: list[list], fields: list) -> list[tuple[int, int]]:
    """[start, end) ranges of rows for one statement each."""
    width = len(fields)
    # Only the unbounded columns count toward the bytes: the others are small.
    large = [i for i, f in enumerate(fields) if f.get_internal_type() in ("TextField", "BinaryField", "JSONField")]
    ranges, start, size = [], 0, 0
    for index, params in enumerate(rows):
        row_bytes = sum(len(params[i]) for i in large if isinstance(params[i], (str, bytes)))
        if index > start and ((index - start + 1) * width > _MAX_PARAMS or size + row_bytes > _MAX_CHUNK_BYTES):
            ranges.append((start, index))
            start, size = index, 0
        size += row_bytes
    ranges.append((start, len(rows)))
    return ranges


@cache
def _multi_insert(model: type[Model], count: int) -> str:
    fields, _sql = _insert_statement(model)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    pk = connection.ops.quote_name(model._meta.pk.column)
    return f"INSERT INTO {_table(model)} ({columns}) VALUES {', '.join([one] * count)} RETURNING {pk}"


@cache
def _update_statement(model: type[Model], names: tuple[str, ...], where: tuple[str, ...]) -> tuple[list, list, str]:
    fields = [model._meta.get_field(name) for name in names]
    conditions = [model._meta.get_field(name) for name in where]
    assignments = ", ".join(f"{connection.ops.quote_name(f.column)} = %s" for f in fields)
    clause = " AND ".join(f"{connection.ops.quote_name(f.column)} = %s" for f in conditions)
    return fields, conditions, f"UPDATE {_table(model)} SET {assignments} WHERE {clause}"


class Update:
    """UPDATE model SET values WHERE field = value AND ..., prepared now and run later.
    Like QuerySet.filter(**where).update(**values), for plain equality only."""

    def __init__(self, model: type[Model], values: dict, **where):
        fields, conditions, self.sql = _update_statement(model, tuple(values), tuple(where))
        self.params = [f.get_db_prep_save(values[f.name], connection) for f in fields]
        self.params += [f.get_db_prep_value(where[f.name], connection, prepared=False) for f in conditions]

    def run(self) -> int:
        """Returns the number of rows matched (Django's MySQL backend counts found rows)."""
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            return cursor.rowcount


# --- the worker's claim ---------------------------------------------------------------------

@cache
def _claim_statements(skip_locked: bool) -> dict[str, str]:
    t, c = _table(SendLog), (lambda name: _column(SendLog, name))
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    return {
        # (priority, id): transactional rows (0) before campaign rows (1), each oldest first,
        # read in order off the (status, priority, id) index.
        "queued": (f"SELECT {c('id')} FROM {t} WHERE {c('status')} = %s ORDER BY {c('priority')}, {c('id')} "
                   f"LIMIT %s{lock}"),
        "due": (f"SELECT {c('id')} FROM {t} WHERE {c('status')} = %s AND {c('next_attempt_at')} <= %s "
                f"ORDER BY {c('next_attempt_at')} LIMIT %s{lock}"),
        # {marks}: one %s per id. Still waiting (queued, or retrying and due): without
        # SKIP LOCKED the rows were not locked by the SELECTs.
        "take": (f"UPDATE {t} SET {c('status')} = %s, {c('claim_token')} = %s, {c('claimed_at')} = %s "
                 f"WHERE {c('id')} IN ({{marks}}) AND ({c('status')} = %s "
                 f"OR ({c('status')} = %s AND {c('next_attempt_at')} <= %s))"),
    }


def transactional_waiting() -> bool:
    """Is a transactional (priority 0) row queued? One read of the (status, priority, id)
    index (hub.delivery.outbox: a drain busy with campaign rows asks every 50 ms)."""
    t, c = _table(SendLog), (lambda name: _column(SendLog, name))
    sql = f"SELECT 1 FROM {t} WHERE {c('status')} = %s AND {c('priority')} = 0 LIMIT 1"
    return bool(_rows(sql, [SendLog.Status.QUEUED]))


def claim_waiting(limit: int, token: str, now: datetime) -> list[int]:
    """Mark up to `limit` waiting rows as `sending` with this claim token: retries that are
    due first, then queued rows: transactional (priority 0) before campaign rows, oldest first.
    Call inside a transaction. Returns the ids it tried to take (the caller reads back those
    that bear its token).
    (hub.delivery.outbox.claim_waiting; this holds the write lock, so no ORM compiling in it.)"""
    S = SendLog.Status
    skip_locked = connection.features.has_select_for_update_skip_locked
    sql = _claim_statements(skip_locked)
    when = connection.ops.adapt_datetimefield_value(now)
    ids = [row[0] for row in _rows(sql["due"], [S.RETRYING, when, limit])]
    if len(ids) < limit:
        ids += [row[0] for row in _rows(sql["queued"], [S.QUEUED, limit - len(ids)])]
    if not ids:
        return []
    # Two steps, because MySQL cannot UPDATE ... WHERE id IN (SELECT ... LIMIT n). The
    # status is checked again in case the database could not lock the rows above.
    take = sql["take"].format(marks=", ".join(["%s"] * len(ids)))
    with connection.cursor() as cursor:
        cursor.execute(take, [S.SENDING, token, when, *ids, S.QUEUED, S.RETRYING, when])
    return ids


# --- quota (hub.quota holds the rules; these are its two statements) -------------------------

@cache
def _quota_statements() -> dict[str, str]:
    t, c = _table(Account), (lambda name: _column(Account, name))
    # What is left today: a `day` account's allowance starts again at quota_total on a new day.
    left = (f"(CASE WHEN {c('quota_type')} = %s AND ({c('quota_day')} IS NULL OR {c('quota_day')} <> %s) "
            f"THEN {c('quota_total')} ELSE {c('quota_available')} END)")
    return {
        # One conditional UPDATE: exact under any concurrency, since the row's write lock makes
        # the check and the change one step. quota_available is assigned BEFORE quota_day on
        # purpose: MySQL evaluates single-table SET clauses left to right with the new values.
        "consume": (f"UPDATE {t} SET {c('quota_available')} = {left} - %s, "
                    f"{c('quota_day')} = (CASE WHEN {c('quota_type')} = %s THEN %s ELSE {c('quota_day')} END) "
                    f"WHERE {c('id')} = %s AND {c('quota_type')} <> %s AND {c('enabled')} = %s "
                    f"AND {c('service_status')} = %s "
                    f"AND ({c('service_start')} IS NULL OR {c('service_start')} <= %s) "
                    f"AND ({c('service_end')} IS NULL OR {c('service_end')} >= %s) AND {left} >= %s"),
        # {account}: the account's id, or a subselect from the app. {day}: the day condition.
        "refund": (f"UPDATE {t} SET {c('quota_available')} = {c('quota_available')} + %s "
                   f"WHERE {c('id')} = {{account}} AND ({c('quota_type')} = %s{{day}})"),
        "day": f" OR ({c('quota_type')} = %s AND {c('quota_day')} = %s)",
        "account_of_app": f"(SELECT {_column(App, 'account')} FROM {_table(App)} WHERE {_column(App, 'id')} = %s)",
    }


def consume_quota(account_id: int, n: int, day: date) -> bool:
    """Take n units from a metered account in service on `day`; False (nothing changed) when
    it is unlimited, not in service or has less than n left. hub.quota.reserve says why."""
    T = Account.QuotaType
    d = connection.ops.adapt_datefield_value(day)
    # `left` appears twice: its two parameters are in the list twice, at its two places.
    params = [T.DAILY, d, n, T.DAILY, d, account_id, T.UNLIMITED, True, Account.ServiceStatus.ENABLED, d, d,
              T.DAILY, d, n]
    with connection.cursor() as cursor:
        cursor.execute(_quota_statements()["consume"], params)
        return cursor.rowcount == 1


def refund_quota(n: int, *, account_id: int | None = None, app_id: int | None = None,
                 charged_on: date, today: date) -> bool:
    """Give n units back to an account (or the account of an app): a `total` account always,
    a `day` account only while the day it was charged on is still today (its allowance has
    started again since). Nothing for an unlimited account. True when a row changed."""
    T = Account.QuotaType
    sql = _quota_statements()
    account = "%s" if account_id is not None else sql["account_of_app"]
    params: list = [n, account_id if account_id is not None else app_id, T.TOTAL]
    day = ""
    if charged_on == today:
        day = sql["day"]
        params += [T.DAILY, connection.ops.adapt_datefield_value(today)]
    with connection.cursor() as cursor:
        cursor.execute(sql["refund"].format(account=account, day=day), params)
        return cursor.rowcount == 1
