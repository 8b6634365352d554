"""Per-server send limits (hub.delivery.throttle): a message over the limit waits (`retrying` with the
time a slot frees, attempts not counted), is never failed or dropped, goes to another server
when one has room, and is sent once the window has moved on. Counts live in the database
(ThrottleSlot), so they hold across workers."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import free_port
from hub.delivery import throttle
from hub.delivery.outbox import deliver_batch
from hub.models import DeliveryAttempt, SendLog, ThrottleSlot
from hub.tests.test_retry import attempts_of, queue_one, sweep_and_run

WINDOW = 2  # seconds: settings.HUB_THROTTLE_MINUTE_SECONDS in these tests
WAIT_GUARD = 15  # seconds: bound on waiting for a short window to pass (a hang guard only)


@pytest.fixture(autouse=True)
def short_minute(settings):
    settings.HUB_THROTTLE_MINUTE_SECONDS = WINDOW


def statuses(rows: list[SendLog]) -> list[str]:
    return [SendLog.objects.get(pk=r.pk).status for r in rows]


def test_over_the_minute_limit_waits_then_sends(smtp_sink, make_server, make_app, run_queue):
    server = make_server(smtp_sink, limit_per_minute=3)
    app = make_app(server).app
    rows = [queue_one(app, subject=f"m{i}") for i in range(5)]

    before = timezone.now()
    assert run_queue() == 1  # one drain for the five
    after = timezone.now()

    assert statuses(rows) == ["sent"] * 3 + ["retrying"] * 2
    assert len(smtp_sink.messages) == 3
    for row in rows[3:]:
        row.refresh_from_db()
        # Waiting for a slot is not an attempt and not a failure.
        assert row.attempts == 0
        assert row.failure_type is None and row.smtp_code is None
        assert "limit" in row.error, row.error
        # Due when the oldest of the 3 slots (taken after `before`) leaves the window.
        assert before + timedelta(seconds=WINDOW) < row.next_attempt_at <= after + timedelta(seconds=WINDOW + 1)
        assert not DeliveryAttempt.objects.filter(log=row).exists()
    assert ThrottleSlot.objects.filter(server=server).count() == 3

    # Wait for each due time (bounded), then do what the sweeper and a worker do. A row tried
    # right at its due time may find the next slot a few milliseconds away and wait again.
    waiting = SendLog.objects.filter(pk__in=[r.pk for r in rows], status=SendLog.Status.RETRYING)
    deadline = time.monotonic() + WAIT_GUARD
    while waiting.exists() and time.monotonic() < deadline:
        due = max(waiting.values_list("next_attempt_at", flat=True))
        while timezone.now() <= due and time.monotonic() < deadline:
            time.sleep(0.05)
        sweep_and_run(run_queue)

    assert statuses(rows) == ["sent"] * 5
    assert len(smtp_sink.messages) == 5
    assert sorted(m.message["Subject"] for m in smtp_sink.messages) == [f"m{i}" for i in range(5)]
    for row in rows:
        row.refresh_from_db()
        assert row.attempts == 1


def test_throttled_messages_are_never_failed(smtp_sink, make_server, make_app, run_queue, settings):
    # Even with the shortest retry schedule (which gives up after one retry), a message held
    # back by a limit is never failed: waiting for a slot uses up no attempt.
    settings.HUB_RETRY_SCHEDULE = [0]
    settings.HUB_THROTTLE_MINUTE_SECONDS = 60  # no slot frees during this test, however slow
    server = make_server(smtp_sink, limit_per_minute=1)
    app = make_app(server).app
    rows = [queue_one(app, subject=f"m{i}") for i in range(3)]
    run_queue()
    for _ in range(5):
        SendLog.objects.filter(pk__in=[r.pk for r in rows], status="retrying").update(
            next_attempt_at=timezone.now() - timedelta(seconds=1))
        sweep_and_run(run_queue)
    assert sorted(statuses(rows)) == ["retrying", "retrying", "sent"]
    assert SendLog.objects.filter(status="retrying", attempts=0).count() == 2
    assert len(smtp_sink.messages) == 1


def test_primary_over_limit_uses_the_secondary(smtp_sink_factory, make_server, make_app, run_queue):
    primary_sink, secondary_sink = smtp_sink_factory(), smtp_sink_factory()
    primary = make_server(primary_sink, name="primary", limit_per_minute=1)
    secondary = make_server(secondary_sink, name="secondary")
    app = make_app(primary, secondary).app
    first, second = queue_one(app, subject="first"), queue_one(app, subject="second")

    assert run_queue() == 1

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.smtp_server_id) == ("sent", primary.id)
    assert (second.status, second.smtp_server_id) == ("sent", secondary.id)
    assert second.attempts == 1
    # A limit is not a failure of the primary: no attempt row for it, its health untouched.
    assert attempts_of(second) == [(secondary.id, DeliveryAttempt.Result.SENT, 250)]
    primary.refresh_from_db()
    assert primary.failing_since is None
    assert [m.message["Subject"] for m in primary_sink.messages] == ["first"]
    assert [m.message["Subject"] for m in secondary_sink.messages] == ["second"]


def test_all_servers_over_limit_wait_for_the_earliest_slot(smtp_sink_factory, make_server, make_app, run_queue):
    a = make_server(smtp_sink_factory(), name="a", limit_per_minute=1)
    b = make_server(smtp_sink_factory(), name="b", limit_per_hour=1)
    app = make_app(a, b).app
    rows = [queue_one(app, subject=f"m{i}") for i in range(3)]

    assert run_queue() == 1

    assert statuses(rows) == ["sent", "sent", "retrying"]
    last = SendLog.objects.get(pk=rows[2].pk)
    # Server a frees a slot within the short minute; b only in an hour: a's time counts.
    assert last.next_attempt_at <= timezone.now() + timedelta(seconds=WINDOW + 1)
    assert last.attempts == 0


@pytest.mark.parametrize("field,window", [("limit_per_hour", 3600), ("limit_per_day", 86400)])
def test_hour_and_day_limits(smtp_sink, make_server, make_app, run_queue, field, window):
    server = make_server(smtp_sink, **{field: 2})
    app = make_app(server).app
    rows = [queue_one(app, subject=f"m{i}") for i in range(3)]

    before = timezone.now()
    assert run_queue() == 1

    assert statuses(rows) == ["sent", "sent", "retrying"]
    assert len(smtp_sink.messages) == 2
    held = SendLog.objects.get(pk=rows[2].pk)
    assert held.attempts == 0
    # The first slot leaves the hour/day window in about an hour/day.
    assert before + timedelta(seconds=window - 60) < held.next_attempt_at <= timezone.now() + timedelta(
        seconds=window + 1)

    # Slots older than the window stop counting: move them back and the message goes.
    ThrottleSlot.objects.filter(server=server).update(at=timezone.now() - timedelta(seconds=window + 5))
    SendLog.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now())
    assert sweep_and_run(run_queue) == 1
    assert statuses(rows) == ["sent"] * 3
    assert len(smtp_sink.messages) == 3


def test_slots_in_every_window_count(smtp_sink, make_server, make_app):
    # 3 per minute, 4 per hour: after a minute has passed the hour limit still binds.
    server = make_server(smtp_sink, limit_per_minute=3, limit_per_hour=4)
    for _ in range(3):
        assert throttle.acquire(server)[1] == 0
    slot, wait = throttle.acquire(server)
    assert slot is None and 0 < wait <= WINDOW + 1
    ThrottleSlot.objects.filter(server=server).update(at=timezone.now() - timedelta(seconds=WINDOW + 5))
    slot, wait = throttle.acquire(server)
    assert slot is not None and wait == 0  # the 4th of the hour
    slot, wait = throttle.acquire(server)
    assert slot is None and WINDOW + 1 < wait <= 3601


def test_usage(smtp_sink, make_server, make_app, run_queue):
    limited = make_server(smtp_sink, name="limited", limit_per_minute=3, limit_per_hour=10)
    unlimited = make_server(smtp_sink, name="unlimited")
    assert throttle.usage(limited) == [(0, 3, WINDOW), (0, 10, 3600)]
    assert throttle.usage(unlimited) == []

    app = make_app(limited).app
    for i in range(2):
        queue_one(app, subject=f"m{i}")
    assert run_queue() == 1

    assert throttle.usage(limited) == [(2, 3, WINDOW), (2, 10, 3600)]
    # A server without limits is not counted at all.
    deliver_batch([queue_one(make_app(unlimited, name="other").app).id])
    assert not ThrottleSlot.objects.filter(server=unlimited).exists()


def test_unreachable_server_uses_no_slot(smtp_sink, make_server, make_app, run_queue, settings):
    settings.HUB_RETRY_SCHEDULE = [60]
    down = make_server(None, name="down", host="127.0.0.1", port=free_port(), limit_per_minute=1)
    up = make_server(smtp_sink, name="up")
    app = make_app(down, up).app

    rows = [queue_one(app, subject=f"m{i}") for i in range(2)]
    assert run_queue() == 1

    # Both went through the secondary; the limited primary, never reached, has its slot free.
    assert statuses(rows) == ["sent", "sent"]
    assert ThrottleSlot.objects.filter(server=down).count() == 0
    assert throttle.usage(down) == [(0, 1, WINDOW)]

    # Alone and unreachable: a connection failure (an attempt, retried), not a limit wait.
    lonely = queue_one(make_app(down, name="only the down server").app)
    deliver_batch([lonely.id])
    lonely.refresh_from_db()
    assert lonely.status == "retrying" and lonely.attempts == 1
    assert ThrottleSlot.objects.filter(server=down).count() == 0


def test_release_gives_the_slot_back(smtp_sink, make_server):
    server = make_server(smtp_sink, limit_per_minute=1)
    slot, _ = throttle.acquire(server)
    assert throttle.acquire(server)[0] is None
    throttle.release(slot)
    assert throttle.usage(server) == [(0, 1, WINDOW)]
    assert throttle.acquire(server)[0] is not None
    throttle.release(None)  # nothing to give back: no error
