"""The outbox: SendLog rows waiting for delivery, and the drains that empty it.

Messages wait in the outbox (SendLog). A django-q2 task does not carry a message: `drain`
delivers whatever is waiting, a claimed batch at a time over pooled connections, until
nothing is left. Whoever commits a waiting row calls `wake_workers()` afterwards, which
queues a drain (the task `hub.tasks.drain`, named by string: nothing here imports the task
module) only when none is pending. Under load one task so delivers hundreds of messages."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Model, Q
from django.utils import timezone
from django_q.tasks import async_task

from .. import queries
from ..models import DeliveryWakeup, SendLog
from . import render
from .attempt import deliver_row
from .crew import Crew
from .lease import WorkerStopping, new_claim_token
from .suppression import check_suppressions

log = logging.getLogger(__name__)

# How often a drain whose batch holds campaign rows looks for transactional mail queued behind.
PRIORITY_POLL_SECONDS = 0.05


def claim(log_ids: list[int]) -> list[SendLog]:
    """Atomically take those of these rows that are still waiting; rows another worker has,
    or that are already finished, are left alone (so a row handed out twice is sent once).
    A `retrying` row only once it is due: a leftover task must not skip the backoff."""
    token = new_claim_token()
    now = timezone.now()
    waiting = Q(status=SendLog.Status.QUEUED) | Q(status=SendLog.Status.RETRYING, next_attempt_at__lte=now)
    taken = SendLog.objects.filter(waiting, pk__in=log_ids).update(
        status=SendLog.Status.SENDING, claim_token=token, claimed_at=now)
    return _claimed(token, log_ids) if taken else []

def claim_waiting(limit: int) -> list[SendLog]:
    """Take up to `limit` waiting rows of the outbox: retries that are due first (few, and
    older; a backlog of new mail must not hold them back), then queued ones, oldest first.
    Several workers (and machines) drain at once: on MariaDB they skip each other's locked
    rows; SQLite runs the whole claim as one write transaction."""
    token = new_claim_token()
    with transaction.atomic():
        # Read back in the same transaction: if that failed after a commit, the rows would
        # sit in `sending` until the sweeper's rescue.
        ids = queries.claim_waiting(limit, token, timezone.now())
        return _claimed(token, ids) if ids else []

def _claimed(token: str, ids: list[int]) -> list[SendLog]:
    """Those of these rows this claim won (by primary key: claim_token has no index), in the
    order the crew starts them: transactional (priority 0) before campaign rows. What each
    delivery would read per row is read here once for the batch: the suppression list
    (re-checked at claim time) and campaign rows' contacts (hub.delivery.render)."""
    rows = list(SendLog.objects.filter(pk__in=ids, claim_token=token).order_by("priority", "id"))
    check_suppressions(rows)
    render.prefetch(rows)
    return rows

def deliver_batch(log_ids: list[int]) -> None:
    """Deliver the given SendLog rows that are still waiting, over pooled connections (the
    API's `sync=1`, the admin's test email)."""
    rows = claim(log_ids)
    deliver_claimed(rows, time.monotonic() + settings.HUB_BATCH_TIME_BUDGET_SECONDS)

def drain() -> int:
    """The delivery task: deliver what waits in the outbox, a claimed batch at a time, over
    up to HUB_DELIVERY_THREADS concurrent SMTP sessions, until nothing is left or the time
    budget is spent (then a fresh task takes over). Returns the number of rows it claimed."""
    take_wakeup_request()  # before looking for rows (see hub.tasks.wake_workers)
    deadline = time.monotonic() + settings.HUB_BATCH_TIME_BUDGET_SECONDS
    claimed = 0
    batch = settings.HUB_DELIVERY_BATCH
    crew = _drain_crew.crew = _crew(deadline)
    try:
        while time.monotonic() < deadline:
            rows = claim_waiting(batch)
            if not rows:
                break
            if len(rows) == batch:
                # A full batch: more may be waiting. Ask for another drain, so an idle worker
                # (here or on another machine) joins in rather than one worker doing it all.
                wake_workers()
            claimed += len(rows)
            deliver_claimed(rows, deadline)  # hands them to this drain's crew
            if len(rows) < batch:
                if not _wait_idle_unless_urgent(crew):
                    continue  # transactional mail came in meanwhile: claim it now
                if settings.HUB_DRAIN_GATHER_MS:
                    # Messages are trickling in one by one: let a few gather before the next
                    # claim (a write transaction and a few queries), so each claim takes several.
                    time.sleep(settings.HUB_DRAIN_GATHER_MS / 1000)
            else:
                # Claim the next batch once every row of this one has started (the last ones
                # still on the wire), so the threads never run dry between batches and a
                # drain holds at most one batch of claimed rows that have not started.
                _wait_for_room(crew)
        crew.finish()
    except WorkerStopping:
        crew.stop()
        wake_workers()
        raise
    except BaseException:
        # This drain took the wake-up request and dies with it (the database went away, the
        # task was stopped): ask for another, or waiting rows would wait for the sweeper.
        crew.abandon_all()
        wake_workers()
        raise
    finally:
        _drain_crew.crew = None
    if time.monotonic() >= deadline or crew.handed_back:
        wake_workers()  # out of time, or rows went back to the queue: a fresh task takes over
    return claimed

def _wait_for_room(crew: Crew) -> None:
    """crew.wait_backlog_below(1), looking every PRIORITY_POLL_SECONDS for transactional mail
    queued behind the batch: then its campaign rows not started yet go back to the queue and
    the drain claims at once (claims take priority 0 first), so such a message waits for the
    rows on the wire, not for a batch of campaign mail."""
    while not crew.wait_backlog_below(1, timeout=PRIORITY_POLL_SECONDS):
        if queries.transactional_waiting() and crew.hand_back_campaign_rows():
            return

def _wait_idle_unless_urgent(crew: Crew) -> bool:
    """crew.wait_idle(), looking every PRIORITY_POLL_SECONDS for transactional mail queued
    meanwhile: False as soon as there is some (the drain claims it at once, beside its rows
    still on the wire), True when the crew is idle. Why: a slow server holding the last rows
    of a campaign must not hold a transactional message that a free connection could take."""
    while not crew.wait_idle(timeout=PRIORITY_POLL_SECONDS):
        if queries.transactional_waiting():
            return False
    return True

def _crew(deadline: float) -> Crew:
    # deliver_row looked up here at each call, so a test can stand in for it on this module.
    return Crew(deadline, lambda row, servers, *chain: deliver_row(row, servers, *chain),
                chains=settings.HUB_SMTP_PIPELINE_NEXT)

# The crew of the drain running in this thread: deliver_claimed hands rows to it.
_drain_crew = threading.local()

def deliver_claimed(rows: list[SendLog], deadline: float) -> None:
    """Deliver rows this worker has claimed, concurrently. Inside a drain the rows join its
    crew and this returns at once (the drain waits for them); otherwise this delivers them and
    returns when all are done. Rows not started by `deadline` go back to the queue; whatever
    goes wrong, no claimed row stays in `sending`."""
    running = getattr(_drain_crew, "crew", None)
    if running is not None:
        running.deliver(rows)
        return
    crew = _crew(deadline)
    try:
        crew.deliver(rows)
        crew.finish()
    except WorkerStopping:
        crew.stop()
        raise
    except BaseException:
        crew.abandon_all()
        raise
    if crew.handed_back:
        wake_workers()


# --- asking for a drain ---------------------------------------------------------------------

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

def request_drain() -> None:
    """Queue a drain now, whatever the wake-up flag says: a worker that has just started
    calls this, because the drain its predecessor was asked for may have died with it (an
    ORM-broker task taken by a killed worker comes back only after Q_CLUSTER's `retry`)."""
    DeliveryWakeup.objects.update_or_create(pk=1, defaults={"requested_at": timezone.now()})
    _queue_drain()

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
    return wake_drain(DeliveryWakeup, "hub.tasks.drain", "drain")

def wake_drain(flag: type[Model], task: str, task_name: str) -> bool:
    """The wake-up protocol of an outbox that a queued task drains (this one's mail, and
    hub.webhooks' events): unless a drain is already pending (the `flag` row's requested_at
    set and fresh), set the flag and queue `task`. Returns True when it queued one."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.HUB_WAKEUP_STALE_SECONDS)
    # The common case under load: a drain is already pending; one read, no write.
    if queries.wakeup_pending_since(stale, flag):
        return False
    rows = flag.objects.filter(pk=1)
    with transaction.atomic():
        if not rows.filter(Q(requested_at__isnull=True) | Q(requested_at__lte=stale)).update(requested_at=now):
            if rows.exists():
                return False  # another process set it just now: its drain covers our rows
            # The row was deleted by hand; two processes may get here at once.
            _obj, created = flag.objects.get_or_create(pk=1, defaults={"requested_at": now})
            if not created:
                return False

        def queue() -> None:
            async_task(task, task_name=task_name)

        if settings.REDIS_URL:
            # After the flag is committed; robust: Redis being down must not turn accepted
            # messages into errors (they wait, and the flag goes stale, see above).
            transaction.on_commit(queue, robust=True)
        else:
            queue()  # the ORM broker: the task row commits with the flag
    return True

def _queue_drain() -> None:
    async_task("hub.tasks.drain", task_name="drain")
