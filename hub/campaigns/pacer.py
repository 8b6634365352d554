"""The pacer: ONE django-q2 task for all campaigns that have to wait for time (a
speed-limited campaign's next token, a template being checked, the last rows' outcomes).

A slice (dispatch.run) never sleeps: when its next rows are a matter of time it sets the
campaign's `wake_at` and calls `ensure()`. The pacer runs the slices whose time has come and
sleeps until the next `wake_at` (at most HUB_CAMPAIGN_POLL_SECONDS at a time), for at most
HUB_CAMPAIGN_RUN_SECONDS, then queues its successor; it ends when no campaign waits for time.
So running campaigns keep at most one worker busy between them (none at all when they all
send at full speed: those are topped up by their own rows' outcomes, topup.py).

One pacer at a time: the lease row `Pacer(pk=1).beat_at`, set while one runs. `ensure()`
queues a pacer only when the lease is free or stale (HUB_CAMPAIGN_PACER_STALE_SECONDS: a
killed pacer). A pacer that finds nothing more to do frees the lease and THEN looks once more
(a slice may have asked just before): whoever asked after that look sees a free lease and
queues a new one. Two pacers at once (a stale lease taken over while the old one still
runs) cost only duplicate work: slices are fenced (dispatch.commit_slice)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from .models import Campaign, Pacer, State

log = logging.getLogger(__name__)

PACE_TASK = "hub.campaigns.tasks.pace"
PER_ROUND = 200  # campaigns run in one round at most


def _queue() -> None:
    async_task(PACE_TASK, task_name="campaign-pacer")


def ensure() -> bool:
    """Make sure a pacer runs (queue one when the lease is free or stale). True: queued."""
    at = timezone.now()
    stale = at - timedelta(seconds=settings.HUB_CAMPAIGN_PACER_STALE_SECONDS)
    lease = Pacer.objects.filter(pk=1)
    with transaction.atomic():
        if not lease.filter(Q(beat_at__isnull=True) | Q(beat_at__lt=stale)).update(beat_at=at):
            if lease.exists():
                return False  # one runs
            _row, created = Pacer.objects.get_or_create(pk=1, defaults={"beat_at": at})
            if not created:
                return False
        if settings.REDIS_URL:
            transaction.on_commit(_queue, robust=True)
        else:
            _queue()  # the ORM broker: the task row commits with the lease
    return True


def _waiting() -> Q:
    return Q(state=State.SENDING, wake_at__isnull=False)


def loop(run_slice: Callable[[int, str], str], budget: float | None = None) -> str:
    """The pacer task's body. `run_slice(campaign_id, token)` is dispatch.run."""
    budget = settings.HUB_CAMPAIGN_RUN_SECONDS if budget is None else budget
    deadline = time.monotonic() + budget
    lease = Pacer.objects.filter(pk=1)
    while True:
        at = timezone.now()
        lease.update(beat_at=at)
        due = list(Campaign.objects.filter(_waiting(), wake_at__lte=at).order_by("wake_at")
                   .values_list("pk", "run_token", "wake_at")[:PER_ROUND])
        for pk, token, wake_at in due:
            # Taken: a slice that needs more time sets wake_at again.
            if Campaign.objects.filter(pk=pk, wake_at=wake_at).update(wake_at=None):
                try:
                    run_slice(pk, token)
                except Exception:
                    log.exception("campaign %s: slice failed; the sweep will look again", pk)
        upcoming = Campaign.objects.filter(_waiting()).order_by("wake_at").values_list("wake_at", flat=True).first()
        if upcoming is None:
            lease.update(beat_at=None)
            if not Campaign.objects.filter(_waiting()).exists():
                return "idle"
            if not lease.filter(beat_at__isnull=True).update(beat_at=timezone.now()):
                return "handed over"  # a new pacer was queued meanwhile
            continue
        if time.monotonic() >= deadline:
            lease.update(beat_at=timezone.now())  # kept: the successor inherits it
            _queue()
            return "continued"
        wait = (upcoming - timezone.now()).total_seconds()
        if wait > 0:
            time.sleep(min(wait, settings.HUB_CAMPAIGN_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
