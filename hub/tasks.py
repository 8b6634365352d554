"""django-q2 task entry points, and how work gets to them. Kept small: the work is in
hub.delivery, which tests call directly; these are the names the queue stores.

Messages wait in the outbox (SendLog). A task does not carry a message: `drain` delivers
whatever is waiting, batch after batch over pooled connections, until nothing is left.
Whoever commits a waiting row calls `wake_workers()` afterwards, which queues a drain only
when none is pending. Under load one task so delivers hundreds of messages; each message
no longer pays for a task of its own (queueing, pickling, the broker's round trips)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from . import queries
from .models import DeliveryWakeup

log = logging.getLogger(__name__)


def drain() -> int:
    from .delivery import drain as run

    return run()


def deliver(log_ids: list[int]) -> None:
    """Deliver these rows now (if still waiting). Queued by earlier versions of the hub,
    one task per message; kept so such tasks still run after an upgrade."""
    from .delivery import deliver_batch

    deliver_batch(log_ids)


def wake_workers() -> bool:
    """Make sure a drain task will look at the outbox after the rows this process has
    committed. Call it after the commit (or inside an `atomic` block, which then also
    checks again once the block commits). Returns True when it queued a new drain.

    Correctness: a drain clears the flag *before* it looks for rows. If we see the flag
    set, the drain it stands for has not cleared it yet, so it will look after our rows
    were committed. If we see it clear, we set it and queue a drain ourselves. A flag set
    longer ago than HUB_WAKEUP_STALE_SECONDS counts as clear: its task may have been lost
    (a Redis broker restarted), and an extra drain costs one query. The sweeper also wakes
    the workers for rows waiting longer than HUB_STUCK_QUEUED_SECONDS (it runs every
    minute), so a lost wake-up delays a message by a minute or two but never loses it.
    (Machines sharing a database compare their clocks with the flag's time: keep them in
    sync with NTP, or a fast clock asks for a drain on every send.)"""
    woke = _wake_or_log()
    if transaction.get_connection().in_atomic_block:
        # Our rows are not committed yet: a drain that starts before the commit would not
        # see them. Look again when they are.
        transaction.on_commit(_wake_or_log)
    return woke


def take_wakeup_request() -> None:
    """A drain calls this before it looks for rows: whoever commits a row after this asks
    for a new drain (the other half of wake_workers)."""
    DeliveryWakeup.objects.filter(pk=1).update(requested_at=None)


def _wake_or_log() -> bool:
    # The rows are committed (or will be with the caller's transaction): failing to wake the
    # workers must not turn an accepted message into an error answer, which a client would
    # retry and so send it twice. The sweeper wakes them within a minute anyway.
    try:
        return _wake()
    except Exception:
        log.exception("could not wake the delivery workers; the sweeper will")
        return False


def _wake() -> bool:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.HUB_WAKEUP_STALE_SECONDS)
    # The common case under load: a drain is already pending; one read, no write.
    if queries.wakeup_pending_since(stale):
        return False
    flag = DeliveryWakeup.objects.filter(pk=1)
    with transaction.atomic():
        if not flag.filter(Q(requested_at__isnull=True) | Q(requested_at__lte=stale)).update(requested_at=now):
            if flag.exists():
                return False  # another process set it just now: its drain covers our rows
            # The row was deleted by hand; two processes may get here at once.
            _obj, created = DeliveryWakeup.objects.get_or_create(pk=1, defaults={"requested_at": now})
            if not created:
                return False
        if settings.REDIS_URL:
            # After the flag is committed; robust: Redis being down must not turn accepted
            # messages into errors (they wait, and the flag goes stale, see above).
            transaction.on_commit(_queue_drain, robust=True)
        else:
            _queue_drain()  # the ORM broker: the task row commits with the flag
    return True


def _queue_drain() -> None:
    async_task("hub.tasks.drain", task_name="drain")


def sweep() -> dict[str, int]:
    from .sweeper import sweep as run

    return run()
