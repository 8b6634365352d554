"""The sweeper runs every minute (a django-q2 schedule made by migration hub 0002): it wakes
the workers for due retries and rescues rows whose worker or task was lost, so every accepted
message ends sent or failed even when a worker is killed or a Redis broker drops a task."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .delivery import lease, throttle
from .delivery.attempt import abandon_rows
from .delivery.outbox import wake_workers
from .models import ApiRateCounter, IdempotencyKey, SendLog

MAX_PER_SWEEP = 5000  # bound one sweep's work; the next sweep takes the rest


def sweep() -> dict[str, int]:
    now = timezone.now()
    # A worker that died mid-send left its rows in `sending`: after longer than a task may
    # run, nobody is working on them any more. They go back to the retry path (the message
    # may have reached the server just before the crash: at-least-once, never lost).
    # The lost try counts as an attempt, so a message that kills its worker every time (a
    # tarpitting server, say) ends `failed` by the retry schedule instead of looping.
    stuck = list(SendLog.objects.filter(
        status=SendLog.Status.SENDING, claimed_at__lt=now - timedelta(seconds=settings.HUB_STUCK_SENDING_SECONDS)
    ).order_by("id")[:MAX_PER_SWEEP])
    abandon_rows(stuck, "the worker delivering this message was lost", retry_now=True)
    rescued = len(stuck)
    # Rows of a worker cluster known dead (hub.delivery.lease): at once, not after the above.
    rescued += lease.rescue_lost()
    now = timezone.now()  # rescued rows are due at once: include them below

    # Waiting rows a drain should have taken: due retries, and queued rows whose wake-up
    # was lost (the process died between its commit and the wake-up, or a Redis broker
    # dropped the task). Waking the workers is all it takes: a drain takes every waiting
    # row (hub.delivery.outbox.claim_waiting).
    due = Q(status=SendLog.Status.RETRYING, next_attempt_at__lte=now) | Q(
        status=SendLog.Status.QUEUED, created_at__lt=now - timedelta(seconds=settings.HUB_STUCK_QUEUED_SECONDS))
    waiting = len(SendLog.objects.filter(due).values_list("id", flat=True)[:MAX_PER_SWEEP])
    if waiting:
        wake_workers()

    day_ago = now - timedelta(hours=24)
    purged = throttle.purge()
    purged += IdempotencyKey.objects.filter(created_at__lt=day_ago).delete()[0]
    purged += ApiRateCounter.objects.filter(window_start__lt=now - timedelta(minutes=5)).delete()[0]
    return {"rescued": rescued, "due": waiting, "purged": purged}
