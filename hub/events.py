"""What happened to a message or a recipient, told to whoever listens: the one seam between
the parts that see events (the delivery engine, tracking, bounce processing, unsubscribes)
and the parts that act on them (event webhooks, statistics).

The core may not import an EDM app (import-linter), and an EDM app should not know which
other apps care; so the emitter calls `emit(Event(...))` and each listener connects to
`happened` in its AppConfig.ready().

Receivers run synchronously, inside the emitter's transaction when it has one (the delivery
engine emits `sent`/`failed` in the transaction that records the outcome): what a receiver
writes (a webhook's outbox row, a counter) commits with the state change or not at all, so
no event is lost and none is told that did not happen. Hence a receiver must be cheap (it
runs once per message), must only write to the database, and must leave slow work (HTTP,
roll-ups) to the queue. A receiver that raises does not undo the event: the error is logged
with its traceback and the other receivers still run; except a database error inside the
emitter's transaction, which fails that transaction (see emit)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from django.db import DatabaseError, transaction
from django.dispatch import Signal

log = logging.getLogger(__name__)


class Kind(StrEnum):
    SENT = "sent"                  # the receiving server accepted the message (data: smtp_code)
    FAILED = "failed"              # final failure (data: failure_type 1..10, smtp_code, reason)
    BOUNCED = "bounced"            # a bounce after acceptance: DSN, VERP (data: failure_type, reason, hard)
    COMPLAINED = "complained"      # a spam complaint (ARF) (data: feedback_type)
    OPENED = "opened"              # (data: ip, user_agent, machine: True for proxies and scanners)
    CLICKED = "clicked"            # (data: url, ip, user_agent, machine)
    UNSUBSCRIBED = "unsubscribed"  # (data: list_id, how: link / one-click / api / admin)


@dataclass(frozen=True)
class Event:
    kind: Kind
    email: str                        # the recipient, lower-case
    at: datetime
    app_id: int | None = None         # the app whose message it was (None: not tied to a message)
    account_id: int | None = None     # when the emitter knows it; else resolve from app_id
    log_id: int | None = None         # the SendLog row
    campaign_id: int | None = None
    contact_id: int | None = None
    data: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


# Receivers: def on_event(sender, event: Event, **kwargs) -> None
happened = Signal()


def emit(event: Event) -> None:
    """Tell every receiver (see the module docstring for what a receiver may do)."""
    if not happened.has_listeners():
        return
    failed_in_database = None
    for receiver, result in happened.send_robust(sender=Event, event=event):
        if isinstance(result, Exception):
            log.error("event receiver %r failed on %s for log %s", receiver, event.kind, event.log_id,
                      exc_info=(type(result), result, result.__traceback__))
            if isinstance(result, DatabaseError) and failed_in_database is None:
                failed_in_database = result
    if failed_in_database is not None and transaction.get_connection().in_atomic_block:
        # Inside the emitter's transaction a database error is not the receiver's alone: a
        # deadlock has rolled back the whole transaction (InnoDB), the outcome with it, and
        # what ran after it would commit on its own. So the emitter's transaction fails too,
        # and its caller retries it (hub.delivery.groupcommit) or records the error.
        raise failed_in_database
