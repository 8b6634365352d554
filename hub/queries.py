"""The few queries every send makes, in plain SQL.

Why not the ORM here: on the bench machine compiling a QuerySet costs 0.3-0.45 ms of CPU,
and running the same statement by hand 0.04 ms. A send makes five of them, which was most
of the API's time per request (see docs/performance.md). Everything else uses the ORM.
The SQL is the portable subset (SQLite, MariaDB/MySQL, PostgreSQL); table and column
names come from the models, so a renamed field breaks loudly in the tests, not silently.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

from django.db import connection
from django.db.models import Model

from .models import App, AppServer, DeliveryWakeup, SendLog, SmtpServer, Suppression


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


@cache
def _statements() -> dict[str, str]:
    """The read statements, built once per process."""
    s, l = SmtpServer, AppServer  # noqa: E741
    return {
        "app": f"SELECT * FROM {_table(App)} WHERE {_column(App, 'id')} = %s",
        "app_servers": (
            f"SELECT s.{_column(s, 'enabled')}, s.{_column(s, 'from_email')}, s.{_column(s, 'username')} "
            f"FROM {_table(l)} l JOIN {_table(s)} s ON s.{_column(s, 'id')} = l.{_column(l, 'server')} "
            f"WHERE l.{_column(l, 'app')} = %s ORDER BY l.{_column(l, 'priority')}, l.{_column(l, 'id')}"),
        # {marks}: one %s per address
        "suppressed": (f"SELECT {_column(Suppression, 'email')} FROM {_table(Suppression)} "
                       f"WHERE {_column(Suppression, 'app')} = %s AND {_column(Suppression, 'email')} IN ({{marks}})"),
        "wakeup_pending": (f"SELECT 1 FROM {_table(DeliveryWakeup)} WHERE {_column(DeliveryWakeup, 'id')} = 1 "
                           f"AND {_column(DeliveryWakeup, 'requested_at')} > %s"),
    }


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def app(pk: int) -> App | None:
    """The App with this primary key (the AppID), or None. (raw() still applies each
    column's converters, e.g. SQLite's datetimes and booleans.)"""
    found = list(App.objects.raw(_statements()["app"], [pk]))
    return found[0] if found else None


def app_servers(app_id: int) -> list[tuple[bool, str, str]]:
    """(enabled, from_email, username) of the app's servers, primary first."""
    rows = _rows(_statements()["app_servers"], [app_id])
    return [(bool(enabled), from_email, username) for enabled, from_email, username in rows]


def suppressed(app_id: int, emails: set[str]) -> list[str]:
    """Which of these (lower-case) addresses are on the app's suppression list."""
    if not emails:
        return []
    sql = _statements()["suppressed"].format(marks=", ".join(["%s"] * len(emails)))
    return sorted(email for (email,) in _rows(sql, [app_id, *sorted(emails)]))


def wakeup_pending_since(since: datetime) -> bool:
    """Is a drain requested after `since` and not started yet (hub.delivery.outbox.wake_workers)?"""
    return bool(_rows(_statements()["wakeup_pending"], [connection.ops.adapt_datetimefield_value(since)]))


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
        "queued": f"SELECT {c('id')} FROM {t} WHERE {c('status')} = %s ORDER BY {c('id')} LIMIT %s{lock}",
        "due": (f"SELECT {c('id')} FROM {t} WHERE {c('status')} = %s AND {c('next_attempt_at')} <= %s "
                f"ORDER BY {c('next_attempt_at')} LIMIT %s{lock}"),
        # {marks}: one %s per id. Still waiting (queued, or retrying and due): without
        # SKIP LOCKED the rows were not locked by the SELECTs.
        "take": (f"UPDATE {t} SET {c('status')} = %s, {c('claim_token')} = %s, {c('claimed_at')} = %s "
                 f"WHERE {c('id')} IN ({{marks}}) AND ({c('status')} = %s "
                 f"OR ({c('status')} = %s AND {c('next_attempt_at')} <= %s))"),
    }


def claim_waiting(limit: int, token: str, now: datetime) -> list[int]:
    """Mark up to `limit` waiting rows as `sending` with this claim token: retries that are
    due first, then queued rows oldest first. Call inside a transaction. Returns the ids it
    tried to take (the caller reads back those that bear its token).
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
