"""The state table of (a)1: every change a customer may not make is refused with
`illegal_state` and changes nothing; the allowed ones do what they say."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict

from hub.campaigns import services, states
from hub.campaigns.models import Campaign, State
from hub.models import SendLog


def snapshot(campaign: Campaign) -> dict:
    campaign.refresh_from_db()
    return {**model_to_dict(campaign), "rows": SendLog.objects.filter(campaign_id=campaign.pk).count()}


@pytest.mark.parametrize("current", list(State))
def test_every_illegal_transition_is_refused_with_nothing_changed(world, current):
    campaign = services.create_campaign(world.account, world.fields(), State.ON_HOLD)
    Campaign.objects.filter(pk=campaign.pk).update(state=current)
    for wanted in State:
        if states.allowed(current, wanted):
            continue
        before = snapshot(campaign)
        with pytest.raises(services.CampaignError) as refused:
            services.set_state(world.account, campaign.pk, wanted)
        assert refused.value.code == "illegal_state"
        with pytest.raises(services.CampaignError):
            services.edit_campaign(world.account, campaign.pk, services.Fields(), state=wanted)
        assert snapshot(campaign) == before


def test_final_states_allow_nothing():
    for state in (State.DONE, State.STOPPED, State.CANCELLED):
        assert not any(states.allowed(state, wanted) for wanted in State)


def test_hold_then_schedule_then_send_now(world):
    campaign = services.create_campaign(world.account, world.fields(), State.ON_HOLD)
    assert campaign.state == State.ON_HOLD and campaign.time_start is None
    campaign = services.set_state(world.account, campaign.pk, State.SENDING)
    assert campaign.state == State.SENDING and campaign.time_start is not None and campaign.run_token


def test_future_send_time_waits_and_the_sweep_starts_it(world, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from hub.campaigns import dispatch

    later = timezone.now() + timedelta(hours=1)
    campaign = services.create_campaign(world.account, world.fields(send_time=later))
    assert campaign.state == State.SCHEDULED
    assert dispatch.sweep() == {"started": 0, "rescued": 0}
    monkeypatch.setattr(dispatch, "now", lambda: later + timedelta(seconds=1))
    Campaign.objects.filter(pk=campaign.pk).update(send_time=timezone.now())
    assert dispatch.sweep()["started"] == 1
    campaign.refresh_from_db()
    assert campaign.state == State.SENDING


def test_a_lost_dispatcher_is_replaced_with_a_new_token(world):
    from datetime import timedelta

    from django.utils import timezone

    from hub.campaigns import dispatch

    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    old = campaign.run_token
    Campaign.objects.filter(pk=campaign.pk).update(beat_at=timezone.now() - timedelta(minutes=5))
    assert dispatch.sweep()["rescued"] == 1
    campaign.refresh_from_db()
    assert campaign.run_token != old
    assert dispatch.run(campaign.pk, old, budget=0.1) == "stopped"  # the lost one cannot write


def test_only_retries_left_frees_the_worker_and_the_sweep_finishes_the_campaign(world, run_queue):
    from datetime import timedelta

    from django.utils import timezone

    from hub.campaigns import dispatch
    from hub.models import SendLog

    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.2)
    rows = SendLog.objects.filter(campaign_id=campaign.pk)
    rows.update(status=SendLog.Status.SENT)
    rows.filter(pk=rows.order_by("id")[0].pk).update(status=SendLog.Status.RETRYING,
                                                     next_attempt_at=timezone.now() + timedelta(hours=5))
    campaign.refresh_from_db()
    assert dispatch.run(campaign.pk, campaign.run_token, budget=5) == "idle"
    rows.update(status=SendLog.Status.SENT, next_attempt_at=None)
    Campaign.objects.filter(pk=campaign.pk).update(beat_at=timezone.now() - timedelta(minutes=5))
    assert dispatch.sweep()["rescued"] == 1
    run_queue()
    campaign.refresh_from_db()
    assert (campaign.state, campaign.sent_count) == (State.DONE, 8)


def test_a_retry_of_a_paused_campaign_is_held_by_the_sweep(world):
    from hub.campaigns import dispatch
    from hub.models import SendLog

    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.2)
    services.pause(world.account, campaign.pk)
    row = SendLog.objects.filter(campaign_id=campaign.pk).first()
    SendLog.objects.filter(pk=row.pk).update(status=SendLog.Status.RETRYING)  # was on its way, came back
    dispatch.sweep()
    assert SendLog.objects.get(pk=row.pk).status == SendLog.Status.HELD
    services.resume(world.account, campaign.pk)
    assert SendLog.objects.get(pk=row.pk).status == SendLog.Status.QUEUED
