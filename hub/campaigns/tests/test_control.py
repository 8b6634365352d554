"""Pause, resume and cancel on a running campaign, and the quota: each takes effect at once
(rows held, removed or refunded in the same transaction as the state), nothing repeats."""

from __future__ import annotations

from collections import Counter

from hub.campaigns import dispatch, services
from hub.campaigns.models import Campaign, State
from hub.delivery import outbox
from hub.models import Account, SendLog

from .conftest import run_until


def rows(campaign, *statuses) -> int:
    return SendLog.objects.filter(campaign_id=campaign.pk, status__in=statuses).count()


def test_pause_holds_waiting_rows_and_resume_sends_each_once(world, run_queue, settings):
    settings.HUB_CAMPAIGN_BACKLOG = 3
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    token = campaign.run_token
    dispatch.run(campaign.pk, token, budget=0.1)
    assert rows(campaign, SendLog.Status.QUEUED) == 3
    services.pause(world.account, campaign.pk)
    assert rows(campaign, SendLog.Status.HELD) == 3 and rows(campaign, SendLog.Status.QUEUED) == 0
    assert dispatch.run(campaign.pk, token, budget=0.1) == "stopped"  # the old dispatcher stops
    outbox.drain()
    assert world.sink.messages == []  # held rows are never claimed
    assert SendLog.objects.filter(campaign_id=campaign.pk).count() == 3
    campaign = services.resume(world.account, campaign.pk)
    assert campaign.run_token != token and rows(campaign, SendLog.Status.QUEUED) == 3
    campaign = run_until(run_queue, campaign, (State.DONE,))
    received = Counter(m.rcpt_tos[0] for m in world.sink.messages)
    assert set(received.values()) == {1} and len(received) == 8 == campaign.sent_count


def test_cancel_removes_unsent_rows_and_accounts_for_every_contact_read(world, run_queue, settings):
    settings.HUB_CAMPAIGN_BACKLOG = 3
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    outbox.drain()  # three sent
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)  # three more queued
    campaign = services.cancel(world.account, campaign.pk)
    assert campaign.state == State.CANCELLED and campaign.cancelled == 3
    assert rows(campaign, *services.UNSENT) == 0
    run_queue()
    assert len(world.sink.messages) == 3
    campaign.refresh_from_db()
    p = services.progress(campaign)
    assert p.sent + p.failed + p.cancelled + sum(p.skipped.values()) == campaign.total


def test_out_of_quota_pauses_with_a_reason_and_a_top_up_lets_it_finish(world, run_queue):
    from hub import quota

    Account.objects.filter(pk=world.account.pk).update(quota_type="all", quota_total=4, quota_available=4)
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    campaign = run_until(run_queue, campaign, (State.PAUSED,))
    assert campaign.reason.startswith("quota_exhausted")
    assert campaign.queued == 4
    assert Account.objects.get(pk=world.account.pk).quota_available == 0
    assert set(SendLog.objects.filter(campaign_id=campaign.pk).values_list("quota_charged", flat=True)) == {1}
    quota.top_up(world.account.pk, 10)
    campaign = services.resume(world.account, campaign.pk)
    campaign = run_until(run_queue, campaign, (State.DONE,))
    assert campaign.sent_count == 8
    assert Account.objects.get(pk=world.account.pk).quota_available == 14 - 8


def test_cancel_gives_the_quota_of_unsent_rows_back(world):
    Account.objects.filter(pk=world.account.pk).update(quota_type="all", quota_total=100, quota_available=100)
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    assert Account.objects.get(pk=world.account.pk).quota_available == 92
    services.cancel(world.account, campaign.pk)
    assert Account.objects.get(pk=world.account.pk).quota_available == 100
    assert Campaign.objects.get(pk=campaign.pk).cancelled == 8
