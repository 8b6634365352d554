"""The dispatcher runs in bounded slices and keeps no worker: a full-speed campaign's slice
returns as soon as its backlog is full and is topped up by its own rows' outcomes (no task);
a speed-limited one sets `wake_at` and the one pacer task runs its next slice when due; the
pacer's lease lets exactly one run and is freed when nothing waits."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from hub.campaigns import dispatch, pacer, services, topup
from hub.campaigns.models import Campaign, Pacer, State
from hub.delivery import outbox
from hub.models import SendLog


def queued_tasks() -> list[str]:
    return [SignedPackage.loads(t.payload)["func"] for t in OrmQ.objects.all()]


def test_full_speed_slice_returns_when_the_backlog_is_full_and_outcomes_top_it_up(
        world, settings, django_capture_on_commit_callbacks):
    settings.HUB_CAMPAIGN_BACKLOG = 3
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    OrmQ.objects.all().delete()  # the start's slice task: run by hand here
    # A long budget, but no waiting: the backlog is full, the rows' outcomes will wake it.
    assert dispatch.run(campaign.pk, campaign.run_token, budget=60) == "waiting"
    assert SendLog.objects.filter(campaign_id=campaign.pk).count() == 3
    assert Campaign.objects.get(pk=campaign.pk).wake_at is None
    assert "hub.campaigns.tasks.dispatch" not in queued_tasks() and "hub.campaigns.tasks.pace" not in queued_tasks()
    # Only drains from here on: each outcome tops the campaign up after its commit.
    for _ in range(10):
        with django_capture_on_commit_callbacks(execute=True):
            outbox.drain()
        if Campaign.objects.get(pk=campaign.pk).state == State.DONE:
            break
    assert Campaign.objects.get(pk=campaign.pk).state == State.DONE  # completed by the last top-up
    assert SendLog.objects.filter(campaign_id=campaign.pk, status=SendLog.Status.SENT).count() == 8
    assert len({m.rcpt_tos[0] for m in world.sink.messages}) == len(world.sink.messages) == 8
    assert "hub.campaigns.tasks.dispatch" not in queued_tasks()


def test_top_up_ignores_other_events_and_stopped_campaigns(world, django_capture_on_commit_callbacks):
    from hub.events import Event, Kind

    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    services.pause(world.account, campaign.pk)
    assert topup.top_up(campaign.pk) == "stopped"
    with django_capture_on_commit_callbacks() as callbacks:
        topup.on_event(None, Event(kind=Kind.OPENED, email="a@x.example", at=timezone.now(), campaign_id=campaign.pk))
        topup.on_event(None, Event(kind=Kind.SENT, email="a@x.example", at=timezone.now()))  # transactional
    assert callbacks == []


def test_speed_limited_slice_is_paced_and_the_pacer_runs_it(world, settings):
    settings.HUB_CAMPAIGN_HOUR_SECONDS = 3600.0
    campaign = services.create_campaign(world.account, world.fields(hour_speed=100), State.SENDING)
    OrmQ.objects.all().delete()
    # One row now (a new bucket starts empty), the next in 36 s: no sleeping in the slice.
    assert dispatch.run(campaign.pk, campaign.run_token, budget=60) == "paced"
    campaign.refresh_from_db()
    assert SendLog.objects.filter(campaign_id=campaign.pk).count() == 1
    assert campaign.wake_at == campaign.bucket_at > timezone.now() + timedelta(seconds=30)
    assert queued_tasks().count("hub.campaigns.tasks.pace") == 1 and Pacer.objects.get(pk=1).beat_at
    assert pacer.ensure() is False  # one pacer at a time
    # Its time comes (the bucket and the wake-up moved back 36 s): the pacer runs the slice.
    back = timedelta(seconds=36)
    Campaign.objects.filter(pk=campaign.pk).update(wake_at=campaign.wake_at - back, bucket_at=campaign.bucket_at - back)
    OrmQ.objects.all().delete()
    assert pacer.loop(dispatch.run, budget=0) == "continued"  # paced again: it queues its successor
    assert SendLog.objects.filter(campaign_id=campaign.pk).count() == 2
    assert queued_tasks().count("hub.campaigns.tasks.pace") == 1
    assert Campaign.objects.get(pk=campaign.pk).wake_at > timezone.now()


def test_pacer_frees_its_lease_when_nothing_waits_and_a_stale_lease_is_taken_over(db, settings):
    assert pacer.ensure() is True
    assert queued_tasks() == ["hub.campaigns.tasks.pace"]
    assert pacer.ensure() is False
    assert pacer.loop(dispatch.run, budget=5) == "idle"
    assert Pacer.objects.get(pk=1).beat_at is None
    assert pacer.ensure() is True  # free again
    Pacer.objects.filter(pk=1).update(
        beat_at=timezone.now() - timedelta(seconds=settings.HUB_CAMPAIGN_PACER_STALE_SECONDS + 1))
    assert pacer.ensure() is True  # a killed pacer's lease
    assert queued_tasks() == ["hub.campaigns.tasks.pace"] * 3


def test_sweep_restarts_a_dead_pacer(world, settings):
    campaign = services.create_campaign(world.account, world.fields(hour_speed=100), State.SENDING)
    Campaign.objects.filter(pk=campaign.pk).update(wake_at=timezone.now() - timedelta(seconds=5))
    Pacer.objects.create(pk=1, beat_at=timezone.now() - timedelta(minutes=5))
    OrmQ.objects.all().delete()
    dispatch.sweep()
    assert queued_tasks() == ["hub.campaigns.tasks.pace"]


def test_a_page_deleted_between_its_two_reads_does_not_end_the_list(world, monkeypatch):
    # store.page_after reads a page's ids, then their rows: when every row of the page went
    # in between, the cursor moves past those ids and the list goes on (it is not finished).
    from hub.contacts import store
    from hub.contacts.models import Contact

    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    a = world.lists[0]
    first_three = list(Contact.objects.filter(mail_list=a).order_by("id").values_list("id", flat=True)[:3])
    real, calls = store.page_after, []

    def first_page_gone(list_id, after_id, limit, *fields):
        calls.append(after_id)
        if len(calls) == 1:
            return [], first_three[-1]
        return real(list_id, after_id, limit, *fields)

    monkeypatch.setattr(dispatch.store, "page_after", first_page_gone)
    s = dispatch.read_slice(campaign, 100, dispatch.context_for(campaign), timezone.now())
    assert calls[:2] == [0, first_three[-1]]
    # a5, a6 of list A (a4 unsubscribed), then B's b1..b4 (B's a2 and a3: still in A, so
    # duplicates).
    assert [r.to for r in s.rows] == ["a5@x.example", "a6@x.example", "b1@y.example", "b2@y.example",
                                      "b3@y.example", "b4@y.example"]
