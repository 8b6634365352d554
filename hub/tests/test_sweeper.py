"""The sweeper (hub.sweeper.sweep, every minute in qcluster, `manage.py hub_sweep` once):
rows whose wake-up was lost (`queued` too long), due retries and rows whose worker died
(`sending` too long) get the workers woken (one drain task, hub.tasks.wake_workers) and are
delivered; while that drain is pending the next sweeps queue nothing more; old throttle
slots, idempotency keys and rate counters are purged."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from hub.delivery.outbox import claim
from hub.models import ApiRateCounter, DeliveryWakeup, IdempotencyKey, SendLog, ThrottleSlot
from hub.sweeper import sweep
from hub.tests.test_retry import queue_one


def lose_tasks() -> None:
    """What a lost drain task looks like: the rows are there, no task is on the broker, and
    the wake-up flag names a request older than HUB_WAKEUP_STALE_SECONDS (its task never ran)."""
    OrmQ.objects.all().delete()
    stale = timezone.now() - timedelta(seconds=django_settings.HUB_WAKEUP_STALE_SECONDS + 1)
    assert DeliveryWakeup.objects.filter(pk=1).update(requested_at=stale) == 1


def age(row: SendLog, **fields_seconds_ago: int) -> None:
    now = timezone.now()
    SendLog.objects.filter(pk=row.pk).update(
        **{name: now - timedelta(seconds=s) for name, s in fields_seconds_ago.items()})


def drain_tasks() -> list[str]:
    return [q.func() for q in OrmQ.objects.all()]


def test_stuck_queued_row_wakes_the_workers_and_is_delivered(smtp_sink, make_server, make_app, run_queue,
                                                             settings):
    settings.HUB_STUCK_QUEUED_SECONDS = 300
    app = make_app(make_server(smtp_sink)).app
    stuck, young = queue_one(app, subject="stuck"), queue_one(app, subject="young")
    lose_tasks()
    age(stuck, created_at=200)
    age(young, created_at=200)

    # Younger than HUB_STUCK_QUEUED_SECONDS: their wake-up may still be on its way.
    assert sweep() == {"rescued": 0, "due": 0, "purged": 0}
    assert OrmQ.objects.count() == 0

    age(stuck, created_at=301)
    result = sweep()

    assert result["due"] == 1 and result["rescued"] == 0
    assert drain_tasks() == ["hub.tasks.drain"]
    assert run_queue() == 1
    # The drain takes everything waiting, oldest first: the young row goes along.
    stuck.refresh_from_db()
    young.refresh_from_db()
    assert stuck.status == young.status == SendLog.Status.SENT, (stuck.error, young.error)
    assert [m.message["Subject"] for m in smtp_sink.messages] == ["stuck", "young"]


def test_row_left_in_sending_by_a_dead_worker_is_rescued(smtp_sink, make_server, make_app, run_queue, settings):
    settings.HUB_STUCK_SENDING_SECONDS = 180
    app = make_app(make_server(smtp_sink)).app
    orphan, busy = queue_one(app, subject="orphan"), queue_one(app, subject="busy")
    lose_tasks()
    # Two workers claimed these; the first was killed long ago, the second is still working.
    assert [r.id for r in claim([orphan.id])] == [orphan.id]
    assert [r.id for r in claim([busy.id])] == [busy.id]
    age(orphan, claimed_at=181)
    age(busy, claimed_at=60)

    result = sweep()

    assert result["rescued"] == 1 and result["due"] == 1
    orphan.refresh_from_db()
    busy.refresh_from_db()
    # Rescued (the lost try counts as an attempt), due at once, and a drain is on its way.
    assert (orphan.status, orphan.attempts) == (SendLog.Status.RETRYING, 1)
    assert orphan.next_attempt_at <= timezone.now()
    assert "worker" in orphan.error and "lost" in orphan.error
    assert busy.status == SendLog.Status.SENDING
    assert OrmQ.objects.count() == 1
    assert run_queue() == 1
    orphan.refresh_from_db()
    assert orphan.status == SendLog.Status.SENT, orphan.error
    assert [m.message["Subject"] for m in smtp_sink.messages] == ["orphan"]
    busy.refresh_from_db()
    assert busy.status == SendLog.Status.SENDING  # still its worker's


def test_due_retry_wakes_the_workers_and_future_retry_does_not(smtp_sink, make_server, make_app, run_queue):
    app = make_app(make_server(smtp_sink)).app
    due, later = queue_one(app, subject="due"), queue_one(app, subject="later")
    lose_tasks()
    now = timezone.now()
    SendLog.objects.filter(pk=later.pk).update(status="retrying", attempts=1,
                                               next_attempt_at=now + timedelta(minutes=5))
    assert sweep()["due"] == 0
    assert OrmQ.objects.count() == 0

    SendLog.objects.filter(pk=due.pk).update(status="retrying", attempts=1, next_attempt_at=now - timedelta(seconds=1))
    assert sweep()["due"] == 1
    assert run_queue() == 1
    assert [m.message["Subject"] for m in smtp_sink.messages] == ["due"]
    later.refresh_from_db()
    assert later.status == SendLog.Status.RETRYING


def test_a_pending_drain_is_not_requested_twice(smtp_sink, make_server, make_app, run_queue, settings):
    # What keeps the sweeper from piling up work while the workers are behind: it only wakes
    # them; while the drain it asked for has not started, later sweeps queue nothing more.
    settings.HUB_STUCK_QUEUED_SECONDS = 300
    app = make_app(make_server(smtp_sink)).app
    retry, stuck = queue_one(app, subject="retry"), queue_one(app, subject="stuck")
    lose_tasks()
    SendLog.objects.filter(pk=retry.pk).update(status="retrying", attempts=1,
                                               next_attempt_at=timezone.now() - timedelta(seconds=1))
    age(stuck, created_at=301)

    first = sweep()
    # The worker has not picked the task up yet (a backlog): the next sweeps add nothing.
    second, third = sweep(), sweep()

    assert first["due"] == second["due"] == third["due"] == 2  # still waiting...
    assert drain_tasks() == ["hub.tasks.drain"]  # ...and one task for both rows
    for row in (retry, stuck):
        row.refresh_from_db()
        assert row.status in SendLog.CLAIMABLE  # the sweeper does not touch waiting rows
    assert run_queue() == 1
    assert sorted(m.message["Subject"] for m in smtp_sink.messages) == ["retry", "stuck"]
    assert SendLog.objects.filter(status=SendLog.Status.SENT).count() == 2
    # Nothing waits any more: the next sweep wakes nobody.
    assert sweep()["due"] == 0
    assert OrmQ.objects.count() == 0


def test_final_rows_are_never_touched(smtp_sink, make_server, make_app, run_queue, settings):
    settings.HUB_STUCK_QUEUED_SECONDS = 1
    settings.HUB_STUCK_SENDING_SECONDS = 1
    app = make_app(make_server(smtp_sink)).app
    sent, failed = queue_one(app), queue_one(app)
    lose_tasks()
    SendLog.objects.filter(pk=sent.pk).update(status="sent", claimed_at=timezone.now() - timedelta(days=1))
    SendLog.objects.filter(pk=failed.pk).update(status="failed", next_attempt_at=timezone.now() - timedelta(days=1))
    age(sent, created_at=86400)
    age(failed, created_at=86400)

    assert sweep() == {"rescued": 0, "due": 0, "purged": 0}
    assert OrmQ.objects.count() == 0
    assert run_queue() == 0
    assert smtp_sink.messages == []


def test_old_bookkeeping_rows_are_purged(smtp_sink, make_server, make_app):
    server = make_server(smtp_sink)
    app = make_app(server).app
    log = queue_one(app)
    now = timezone.now()
    old_slot = ThrottleSlot.objects.create(server=server, at=now - timedelta(days=2))
    new_slot = ThrottleSlot.objects.create(server=server, at=now - timedelta(minutes=30))
    old_key = IdempotencyKey.objects.create(app=app, key="old", request_hash="0" * 64, log=log,
                                            created_at=now - timedelta(hours=25))
    new_key = IdempotencyKey.objects.create(app=app, key="new", request_hash="0" * 64, log=log,
                                            created_at=now - timedelta(hours=23))
    old_counter = ApiRateCounter.objects.create(app=app, window_start=now - timedelta(minutes=10), count=3)
    new_counter = ApiRateCounter.objects.create(app=app, window_start=now.replace(second=0, microsecond=0),
                                                count=3)

    assert sweep()["purged"] == 3

    assert list(ThrottleSlot.objects.values_list("pk", flat=True)) == [new_slot.pk]
    assert list(IdempotencyKey.objects.values_list("pk", flat=True)) == [new_key.pk]
    assert list(ApiRateCounter.objects.values_list("pk", flat=True)) == [new_counter.pk]
    assert not ThrottleSlot.objects.filter(pk=old_slot.pk).exists()
    assert not IdempotencyKey.objects.filter(pk=old_key.pk).exists()
    assert not ApiRateCounter.objects.filter(pk=old_counter.pk).exists()
    # The message the keys named is audit log: never purged.
    assert SendLog.objects.filter(pk=log.pk).exists()


def test_the_migration_schedules_the_sweep(db):
    schedule = Schedule.objects.get(name="hub-sweep")
    assert schedule.func == "hub.tasks.sweep"
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 1
    assert schedule.repeats == -1  # forever


def test_the_scheduled_function_sweeps(smtp_sink, make_server, make_app, run_queue, settings):
    from django.utils.module_loading import import_string

    settings.HUB_STUCK_QUEUED_SECONDS = 300
    row = queue_one(make_app(make_server(smtp_sink)).app)
    lose_tasks()
    age(row, created_at=301)

    result = import_string(Schedule.objects.get(name="hub-sweep").func)()

    assert result["due"] == 1
    assert run_queue() == 1
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT


def test_hub_sweep_command_prints_json(smtp_sink, make_server, make_app, run_queue, settings):
    settings.HUB_STUCK_QUEUED_SECONDS = 300
    row = queue_one(make_app(make_server(smtp_sink)).app)
    lose_tasks()
    age(row, created_at=301)
    out = StringIO()

    call_command("hub_sweep", stdout=out)

    assert json.loads(out.getvalue()) == {"rescued": 0, "due": 1, "purged": 0}
    assert run_queue() == 1
    assert len(smtp_sink.messages) == 1
