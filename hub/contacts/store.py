"""Writing contacts in bulk, with the list's counter kept exact.

Inserts are one prepared `INSERT ... IGNORE`-style statement run with executemany over plain
tuples (no model instances: an import writes millions of rows). The database's own unique
(mail_list, email) index drops duplicates, within a batch and against the list, and the
statement's row count says exactly how many rows went in, so `duplicates = valid rows -
inserted` is exact even with concurrent writers. The caller runs insert() and bump() in one
transaction (`atomic`), so the counter and the rows never disagree."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from .models import Contact, MailList
from .normalize import FIELD_ORDER

# Columns of the INSERT: the list and account, the values of normalize.row_values, then the
# per-batch status columns.
_COLUMNS = ("account_id", "mail_list_id", *FIELD_ORDER, "subscribed", "unsubscribed_at", "pending", "created_at")

DELETE_CHUNK = 2000


def _insert_sql() -> str:
    table = connection.ops.quote_name(Contact._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(Contact._meta.get_field(c.removesuffix("_id")).column)
                        for c in _COLUMNS)
    values = ", ".join(["%s"] * len(_COLUMNS))
    if connection.vendor == "sqlite":
        return f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({values})"
    if connection.vendor == "mysql":
        return f"INSERT IGNORE INTO {table} ({columns}) VALUES ({values})"
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING"


def insert(mail_list: MailList, rows: Iterable[tuple], *, now: datetime.datetime, subscribed: bool = True,
           pending: bool = False, unsubscribed_at: datetime.datetime | None = None) -> int:
    """Insert normalize.row_values tuples into the list; returns how many went in (the others
    were already there). Call inside `transaction.atomic()` together with bump()."""
    ops = connection.ops
    head = (mail_list.account_id, mail_list.pk)
    tail = (subscribed, ops.adapt_datetimefield_value(unsubscribed_at), pending, ops.adapt_datetimefield_value(now))
    adapt_date = ops.adapt_datefield_value
    params = []
    for row in rows:
        if row[3] is not None:  # birthday (the order of normalize.FIELD_ORDER)
            row = (*row[:3], adapt_date(row[3]), *row[4:])
        params.append(head + row + tail)
    if not params:
        return 0
    with connection.cursor() as cursor:
        cursor.executemany(_insert_sql(), params)
        return max(cursor.rowcount, 0)


def bump(mail_list_id: int, delta: int) -> None:
    if delta:
        MailList.objects.filter(pk=mail_list_id).update(contact_count=F("contact_count") + delta)


def delete_ids(mail_list_id: int, ids: list[int]) -> int:
    """Delete these contacts of the list and lower its counter, in one transaction."""
    if not ids:
        return 0
    with transaction.atomic():
        deleted = Contact.objects.filter(mail_list_id=mail_list_id, pk__in=ids).delete()[0]
        bump(mail_list_id, -deleted)
    return deleted


def delete_all(mail_list_id: int) -> int:
    """Every contact of the list, DELETE_CHUNK rows per transaction: a big list never holds
    the write lock (SQLite) or row locks (InnoDB) long enough to stall the send path.
    Keyset on the id: each chunk starts after the last one. Starting from the list's first
    id every time would make InnoDB walk over all the rows deleted so far (they stay in the
    index, delete-marked, until its purge catches up): quadratic on a big list. Ids only
    grow (AUTOINCREMENT / auto_increment), so a contact added meanwhile is still reached."""
    total = last = 0
    while True:
        ids = list(Contact.objects.filter(mail_list_id=mail_list_id, pk__gt=last).order_by("id")
                   .values_list("id", flat=True)[:DELETE_CHUNK])
        if not ids:
            return total
        total += delete_ids(mail_list_id, ids)
        last = ids[-1]
        # Let writers that queued up for the lock in (a send, an import): SQLite's busy
        # handler polls with growing sleeps, so a deleter that takes the lock again at once
        # starves them (measured at 1M contacts: send p99 636 ms while a list emptied).
        if settings.HUB_CONTACTS_DELETE_PAUSE_MS:
            time.sleep(settings.HUB_CONTACTS_DELETE_PAUSE_MS / 1000)


# --- keyword search on MariaDB/MySQL -------------------------------------------------------------
# LIKE '%kw%' can use no index to seek, so a rare keyword reads the whole list. MariaDB's
# planner then walks the primary key (hoping ORDER BY id LIMIT finds matches early) and
# reads every row whole: 2-3.5 s at 1M contacts. Scanning the narrow (mail_list, email,
# fullname) index instead reads a fraction of the bytes (0.3 s measured). Django has no
# index hints, hence these two statements; SQLite's planner picks that index by itself.

def _like(keyword: str) -> str:
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _keyword_where() -> str:
    table = connection.ops.quote_name(Contact._meta.db_table)
    return (f"FROM {table} FORCE INDEX (contacts_contact_search) WHERE mail_list_id = %s "
            "AND (email LIKE BINARY %s OR fullname LIKE %s)")


def keyword_page(mail_list_id: int, keyword: str, after_id: int, offset: int,
                 limit: int) -> tuple[int, list[int]] | None:
    """(matches in all, ids of one page) of a list's contacts matching `keyword` (address:
    exact case, it is stored lower-case; name: the column's case-insensitive collation), or
    None where the ORM query is as good (not MySQL/MariaDB). One pass over the index gives
    both: a window COUNT over every match, the cursor and offset applied after it (a page
    query and a COUNT were two passes: 1.25 s at 1M for a name one contact in five has)."""
    if connection.vendor != "mysql":
        return None
    params = [mail_list_id, _like(keyword.lower()), _like(keyword)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, total FROM (SELECT id, COUNT(*) OVER () AS total {_keyword_where()}) AS matches "
                       "WHERE id > %s ORDER BY id LIMIT %s OFFSET %s", [*params, after_id, limit, offset])
        rows = cursor.fetchall()
        if rows:
            return rows[0][1], [row[0] for row in rows]
        if not after_id and not offset:
            return 0, []
        cursor.execute(f"SELECT COUNT(*) {_keyword_where()}", params)  # past the last page
        return cursor.fetchone()[0], []


def page_after(mail_list_id: int, after_id: int, limit: int, *fields: str) -> tuple[list[tuple], int | None]:
    """The next `limit` contacts of a list after id `after_id`, in id order, as value tuples
    of `fields`, and the last id read (None at the list's end). Rows deleted since their id
    was read are missing from the tuples, so advance a cursor with the id returned.

    Why two queries: asked for `mail_list_id = L AND id > X ORDER BY id LIMIT n` with columns
    the (mail_list, id) index does not hold, MariaDB 10.11 walks the list's index entries
    from its first contact, filtering id > X on the way (EXPLAIN: ref on mail_list alone,
    "Using index condition"): at position 700,000 of a million-contact list a page of 1,000
    took 124 ms instead of 2 ms, so reading a list page by page was quadratic. Asked for
    the ids alone, it seeks to X in that index (a range, 0.6 ms). So: the ids from the
    index, then their rows by primary key."""
    ids = list(Contact.objects.filter(mail_list_id=mail_list_id, id__gt=after_id).order_by("id")
               .values_list("id", flat=True)[:limit])
    if not ids:
        return [], None
    rows = list(Contact.objects.filter(mail_list_id=mail_list_id, id__in=ids).order_by("id").values_list(*fields))
    return rows, ids[-1]
