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

from .models import App, AppServer, DeliveryWakeup, SmtpServer, Suppression


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
    """Is a drain requested after `since` and not started yet (hub.tasks.wake_workers)?"""
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


def insert(obj: Model) -> None:
    """INSERT a new model instance and set its primary key, as obj.save() would."""
    if connection.vendor not in ("sqlite", "mysql"):
        obj.save()  # cursor.lastrowid is the new id only on these two
        return
    fields, sql = _insert_statement(type(obj))
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
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


def update(model: type[Model], values: dict, **where) -> int:
    """UPDATE model SET values WHERE field = value AND ...; returns the number of rows
    changed. Like QuerySet.filter(**where).update(**values), for plain equality only."""
    fields, conditions, sql = _update_statement(model, tuple(values), tuple(where))
    params = [f.get_db_prep_save(values[f.name], connection) for f in fields]
    params += [f.get_db_prep_value(where[f.name], connection, prepared=False) for f in conditions]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
