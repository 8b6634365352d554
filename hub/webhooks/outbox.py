"""The webhook outbox's delivering half: a django-q2 drain task claims due events, POSTs
them to their endpoints in batches (one POST per endpoint and batch, several endpoints at
once in threads), and records each POST (Attempt) and each event's outcome.

Waking follows hub.delivery.outbox: whoever commits events calls `wake()` after the commit;
it queues `hub.webhooks.tasks.drain` only when no drain is pending (a flag row, cleared by
the drain before it looks). The schedule `webhooks-sweep` (every minute) wakes a drain for
retries that came due and for anything a lost wake-up stranded.

Retries: a failed POST (no connection, timeout, refused address, any non-2xx answer,
redirects included) puts each of its events back with attempt n waiting
min(BASE * 2**(n-1), MAX) seconds times a random factor in [0.5, 1.0] (jitter: endpoints
that failed together do not come back together); after HUB_WEBHOOK_MAX_ATTEMPTS the event
is failed. The endpoint itself pauses as long (`retry_at`), so its newer events do not
hammer a server that is down. Delivery is at least once: an event's `id` is stable."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from hub import crypto
from hub.delivery.outbox import wake_drain

from . import sender, signing
from .models import Attempt, Endpoint, Event, Wakeup

log = logging.getLogger(__name__)
Status = Event.Status


# --- waking a drain ---------------------------------------------------------------------------

def wake() -> bool:
    """Make sure a drain looks at the outbox after what this process committed. Never
    raises: the events are committed and the schedule wakes a drain within a minute."""
    try:
        return _wake()
    except Exception:
        log.exception("could not wake the webhook drain; the schedule will")
        return False


def _wake() -> bool:
    # The mail outbox's protocol (hub.delivery.outbox.wake_drain) on this outbox's own flag.
    return wake_drain(Wakeup, "hub.webhooks.tasks.drain", "webhooks-drain")


# --- retries ----------------------------------------------------------------------------------

def retry_delay(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`, with jitter (see the module docstring)."""
    ceiling = min(settings.HUB_WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0),
                  settings.HUB_WEBHOOK_RETRY_MAX_SECONDS)
    return ceiling * random.uniform(0.5, 1.0)


# --- claiming ---------------------------------------------------------------------------------

@dataclass
class Batch:
    endpoint: Endpoint
    events: list[Event]
    body: bytes
    delivery_id: str
    result: sender.Result | None = None


def due_endpoints(now: datetime, limit: int) -> list[int]:
    """Up to `limit` enabled, not paused endpoints that have due events, in random order
    (so one endpoint with a huge backlog cannot keep the others waiting). One indexed
    existence check per endpoint: a DISTINCT over a backlog of a million events would read
    them all on every round."""
    ready = list(Endpoint.objects.filter(enabled=True).filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
                 .values_list("id", flat=True))
    random.shuffle(ready)
    due = []
    for endpoint_id in ready:
        if Event.objects.filter(status=Status.PENDING, endpoint_id=endpoint_id, next_attempt_at__lte=now).exists():
            due.append(endpoint_id)
            if len(due) >= limit:
                break
    return due


def claim(endpoint: Endpoint, now: datetime) -> list[Event]:
    """Take up to HUB_WEBHOOK_BATCH of this endpoint's due events, longest due first. A row
    another drain took meanwhile is not taken twice (the UPDATE re-checks the status)."""
    token = uuid.uuid4().hex
    with transaction.atomic():
        # In the index's order (status, endpoint, next_attempt_at): LIMIT reads only the batch.
        ids = list(Event.objects.filter(endpoint=endpoint, status=Status.PENDING, next_attempt_at__lte=now)
                   .order_by("next_attempt_at", "id").values_list("id", flat=True)[:settings.HUB_WEBHOOK_BATCH])
        if not ids:
            return []
        Event.objects.filter(pk__in=ids, status=Status.PENDING).update(
            status=Status.SENDING, claim_token=token, claimed_at=now)
        return list(Event.objects.filter(pk__in=ids, claim_token=token).order_by("id"))


def body_of(events: list[Event]) -> bytes:
    return json.dumps({"events": [e.payload() for e in events]}, ensure_ascii=False,
                      cls=Event._meta.get_field("data").encoder, separators=(",", ":")).encode("utf-8")


def _prepare(endpoint: Endpoint, events: list[Event]) -> Batch:
    return Batch(endpoint, events, body_of(events), uuid.uuid4().hex)


def _send(batch: Batch) -> Batch:
    try:
        secret = batch.endpoint.get_secret()
    except crypto.DecryptionError as exc:  # a lost encryption key: every attempt fails, and says why
        batch.result = sender.Result(None, "", f"cannot read the endpoint's secret: {exc}", 0)
        return batch
    headers = signing.headers(secret, batch.body, batch.delivery_id)
    try:
        batch.result = sender.post(batch.endpoint.url, batch.body, headers, settings.HUB_WEBHOOK_TIMEOUT_SECONDS)
    except Exception as exc:
        # A bug here must not leave the claimed events in `sending` until the sweep: the
        # attempt is recorded as failed (and retried) with the error, and logged in full.
        log.exception("webhook POST to endpoint %s crashed", batch.endpoint.pk)
        batch.result = sender.Result(None, "", f"internal error: {type(exc).__name__}: {exc}", 0)
    return batch


# --- recording --------------------------------------------------------------------------------

def record(batch: Batch, now: datetime | None = None) -> Attempt:
    """The POST's outcome: its Attempt row, each event delivered or back for a retry (or
    failed after the last attempt), the endpoint's pause. One transaction."""
    now = now or timezone.now()
    result = batch.result
    endpoint = batch.endpoint
    ids = [e.pk for e in batch.events]
    with transaction.atomic():
        attempt = Attempt.objects.create(
            endpoint=endpoint, account_id=endpoint.account_id, delivery_id=batch.delivery_id,
            started_at=now - timedelta(milliseconds=result.duration_ms), duration_ms=result.duration_ms,
            event_count=len(ids), ok=result.ok, status_code=result.status_code,
            response=result.response[:sender.RESPONSE_KEEP], error=result.error[:sender.RESPONSE_KEEP])
        # Only while this claim still holds them: if the sweep released them (this drain ran
        # past its time) and another drain took them, that drain's outcome stands.
        mine = Event.objects.filter(pk__in=ids, status=Status.SENDING, claim_token=batch.events[0].claim_token)
        if result.ok:
            mine.update(status=Status.DELIVERED, delivered_at=now, last_attempt=attempt, claim_token="",
                        next_attempt_at=None, attempts=F("attempts") + 1)
            Endpoint.objects.filter(pk=endpoint.pk).update(failures=0, retry_at=None, last_success_at=now)
            return attempt
        by_attempts: dict[int, list[int]] = defaultdict(list)
        for e in batch.events:
            by_attempts[e.attempts + 1].append(e.pk)
        for attempts, group in by_attempts.items():
            rows = mine.filter(pk__in=group)
            if attempts >= settings.HUB_WEBHOOK_MAX_ATTEMPTS:
                rows.update(status=Status.FAILED, attempts=attempts, last_attempt=attempt, claim_token="",
                            next_attempt_at=None)
            else:
                rows.update(status=Status.PENDING, attempts=attempts, last_attempt=attempt, claim_token="",
                            next_attempt_at=now + timedelta(seconds=retry_delay(attempts)))
        failures = endpoint.failures + 1
        Endpoint.objects.filter(pk=endpoint.pk).update(
            failures=failures, last_failure_at=now, retry_at=now + timedelta(seconds=retry_delay(failures)))
    log.info("webhook POST to endpoint %s failed (%s events): %s", endpoint.pk, len(ids), result.error)
    return attempt


# --- the drain --------------------------------------------------------------------------------

def deliver_due(now: datetime | None = None) -> int:
    """One round: a batch for each of up to HUB_WEBHOOK_THREADS due endpoints, POSTed at
    once, then recorded. Returns the number of events sent (0: nothing was due)."""
    now = now or timezone.now()
    batches = []
    for endpoint in Endpoint.objects.filter(pk__in=due_endpoints(now, settings.HUB_WEBHOOK_THREADS)):
        events = claim(endpoint, now)
        if events:
            batches.append(_prepare(endpoint, events))
    if not batches:
        return 0
    if len(batches) == 1:
        _send(batches[0])
    else:
        # Only the HTTP runs in the threads; the database work stays in this one.
        with ThreadPoolExecutor(max_workers=len(batches), thread_name_prefix="webhook") as pool:
            list(pool.map(_send, batches))
    for batch in batches:
        record(batch)
    return sum(len(b.events) for b in batches)


def drain() -> int:
    """The task: deliver due events until none is left or HUB_WEBHOOK_DRAIN_SECONDS are
    spent (then a fresh task takes over). Returns the number of events sent."""
    Wakeup.objects.filter(pk=1).update(requested_at=None)  # before looking (see wake)
    deadline = time.monotonic() + settings.HUB_WEBHOOK_DRAIN_SECONDS
    sent = 0
    while True:
        done = deliver_due()
        sent += done
        if not done:
            return sent
        if time.monotonic() >= deadline:
            wake()
            return sent


# --- resend and the sweep ---------------------------------------------------------------------

def resend(events) -> int:
    """Put these events (a queryset, already filtered by account) back in the outbox, due now,
    with a fresh series of attempts; their ids stay, so a receiver can tell a repeat. An
    event being sent right now is left alone. Returns how many were queued."""
    now = timezone.now()
    with transaction.atomic():
        count = events.exclude(status=Status.SENDING).update(
            status=Status.PENDING, attempts=0, next_attempt_at=now, claim_token="", delivered_at=None)
        if count:
            transaction.on_commit(wake, robust=True)
    return count


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Every minute (schedule webhooks-sweep): release claims of drains that died, fail
    events waiting too long, purge old history, and wake a drain when anything is due."""
    now = now or timezone.now()
    stuck_before = now - timedelta(seconds=settings.HUB_WEBHOOK_TIMEOUT_SECONDS + settings.HUB_WEBHOOK_DRAIN_SECONDS
                                   + 60)
    released = Event.objects.filter(status=Status.SENDING, claimed_at__lt=stuck_before).update(
        status=Status.PENDING, claim_token="", next_attempt_at=now)
    expired = Event.objects.filter(status=Status.PENDING,
                                   created_at__lt=now - timedelta(hours=settings.HUB_WEBHOOK_MAX_AGE_HOURS)).update(
        status=Status.FAILED, next_attempt_at=None)
    keep = now - timedelta(days=settings.HUB_WEBHOOK_KEEP_DAYS)
    purged, _ = Event.objects.filter(status__in=(Status.DELIVERED, Status.FAILED), created_at__lt=keep).delete()
    # Bounded per run: the ORM collects an attempt's events to clear their last_attempt.
    old = list(Attempt.objects.filter(started_at__lt=keep).order_by("id").values_list("id", flat=True)[:5000])
    purged_attempts, _ = Attempt.objects.filter(pk__in=old).delete() if old else (0, {})
    due = bool(due_endpoints(now, 1))
    if due:
        wake()
    return {"released": released, "expired": expired, "purged": purged, "purged_attempts": purged_attempts,
            "due": int(due)}


def counts_by_status(endpoint: Endpoint) -> dict[str, int]:
    return dict(Event.objects.filter(endpoint=endpoint).values_list("status").annotate(n=Count("id"))
                .order_by())
