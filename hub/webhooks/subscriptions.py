"""The hub.events receiver: the transactional outbox's writing half.

It runs for every recipient of every message, inside the transaction that records the
outcome (hub.delivery.attempt), so what it costs every message pays. Hence a snapshot, per
process, of who subscribes to what: the enabled endpoints by account, and the apps of those
accounts only (two queries, at most once per HUB_WEBHOOK_CACHE_SECONDS). An event of an
account without an endpoint for its kind costs two dict lookups; with one, one INSERT
(a row per endpoint) and, once per transaction, the wake-up after the commit.

Changes made in this process (admin, API) clear the snapshot at once (post_save/
post_delete on Endpoint and App; App rows are not saved on the send path, so this does not
reload per message); other processes see them within the cache time. So a new endpoint
receives the events committed in this process from then on, and everywhere from at most
HUB_WEBHOOK_CACHE_SECONDS later; a disabled one gets no new rows from this process, and from
others for up to those seconds (delivered when it is enabled again, or expired by
outbox.sweep). Changes made by a bulk UPDATE (admin action) call invalidate() themselves."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from hub import events
from hub.models import App

from .models import Endpoint, Event
from .outbox import wake


@dataclass(frozen=True)
class Snapshot:
    loaded_at: float
    # account id -> ((endpoint id, kinds), ...)
    by_account: dict[int, tuple[tuple[int, frozenset[str]], ...]] = field(default_factory=dict)
    # app id -> account id, for the apps of subscribed accounts only
    app_accounts: dict[int, int] = field(default_factory=dict)


_EMPTY = Snapshot(loaded_at=float("-inf"))
_snapshot = _EMPTY
_lock = threading.Lock()


def invalidate() -> None:
    global _snapshot
    _snapshot = _EMPTY


def invalidate_on_change(sender, **kwargs) -> None:
    invalidate()


def _load() -> Snapshot:
    by_account: dict[int, list[tuple[int, frozenset[str]]]] = {}
    for endpoint_id, account_id, kinds in Endpoint.objects.filter(enabled=True).values_list(
            "id", "account_id", "kinds"):
        by_account.setdefault(account_id, []).append((endpoint_id, frozenset(k for k in kinds.split(",") if k)))
    apps: dict[int, int] = {}
    if by_account:
        apps = dict(App.objects.filter(account_id__in=list(by_account)).values_list("id", "account_id"))
    return Snapshot(time.monotonic(), {a: tuple(v) for a, v in by_account.items()}, apps)


def current() -> Snapshot:
    """This process's snapshot, reloaded when older than HUB_WEBHOOK_CACHE_SECONDS."""
    global _snapshot
    snap = _snapshot
    if time.monotonic() - snap.loaded_at < settings.HUB_WEBHOOK_CACHE_SECONDS:
        return snap
    with _lock:
        if _snapshot is snap:  # nobody reloaded it while this thread waited
            _snapshot = _load()
        return _snapshot


def targets(event: events.Event) -> list[tuple[int, int]]:
    """(endpoint id, account id) of each enabled endpoint subscribed to this event."""
    snap = current()
    if not snap.by_account:
        return []
    account_id = event.account_id if event.account_id is not None else snap.app_accounts.get(event.app_id)
    subs = snap.by_account.get(account_id) if account_id is not None else None
    if not subs:
        return []
    return [(endpoint_id, account_id) for endpoint_id, kinds in subs if event.kind in kinds]


# The outbox row's columns, in the order _insert_sql names them.
_COLUMNS = ("endpoint", "account", "kind", "email", "occurred_at", "app_id", "log_id", "campaign_id", "contact_id",
            "data", "status", "attempts", "next_attempt_at", "claim_token", "created_at")


@cache
def _insert_sql() -> str:
    """Plain SQL, built once per process (hub.queries explains why: the ORM's compiling and
    per-field preparation would triple what a subscribed message pays)."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(Event._meta.get_field(name).column) for name in _COLUMNS)
    return f"INSERT INTO {quote(Event._meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"


def on_event(sender, event: events.Event, **kwargs) -> None:
    """Write one outbox row per subscribed endpoint, in the caller's transaction."""
    chosen = targets(event)
    if not chosen:
        return
    if connection.vendor not in ("sqlite", "mysql"):  # e.g. PostgreSQL's jsonb wants the ORM's adaptation
        Event.objects.bulk_create([Event(endpoint_id=e, account_id=a, kind=str(event.kind), email=event.email[:320],
                                         occurred_at=event.at, app_id=event.app_id, log_id=event.log_id,
                                         campaign_id=event.campaign_id, contact_id=event.contact_id,
                                         data=dict(event.data), next_attempt_at=event.at) for e, a in chosen])
        _wake_after_commit()
        return
    ops = connection.ops
    at = ops.adapt_datetimefield_value(event.at)
    data = json.dumps(dict(event.data), cls=DjangoJSONEncoder)
    kind = str(event.kind)
    now = ops.adapt_datetimefield_value(timezone.now())
    rows = [(endpoint_id, account_id, kind, event.email[:320], at, event.app_id, event.log_id, event.campaign_id,
             event.contact_id, data, Event.Status.PENDING.value, 0, at, "", now)
            for endpoint_id, account_id in chosen]
    with connection.cursor() as cursor:
        cursor.executemany(_insert_sql(), rows)
    _wake_after_commit()


def _wake_after_commit() -> None:
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        wake()
        return
    # Once per transaction (a message to 50 recipients emits 50 events in one).
    if any(entry[1] is wake for entry in connection.run_on_commit):
        return
    transaction.on_commit(wake, robust=True)
