"""is_delay: a domain that pushes back (4xx "too many, try later") has its remaining
recipients spread over the next 24 hours instead of the usual retry pace; rows made later
for that domain get the next spread due times; other domains are not affected."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from hub.campaigns import delay, dispatch, services
from hub.campaigns.models import Campaign, State
from hub.delivery import outbox
from hub.models import SendLog

PUSH_BACK = "451 4.7.1 Too many messages from your IP, try again later"


def test_pushed_back_domain_is_spread_over_24_hours(world, settings):
    world.sink.handler.refuse.update({f"b{i}@y.example": PUSH_BACK for i in range(1, 5)})
    campaign = services.create_campaign(world.account, world.fields(is_delay=True), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    outbox.drain()
    y = SendLog.objects.filter(campaign_id=campaign.pk, to__endswith="@y.example")
    assert set(y.values_list("status", flat=True)) == {SendLog.Status.RETRYING}
    assert SendLog.objects.filter(campaign_id=campaign.pk, status=SendLog.Status.SENT).count() == 4
    campaign.refresh_from_db()
    before = timezone.now()
    assert delay.push_back(campaign, campaign.run_token) == ["y.example"]
    due = sorted(y.values_list("next_attempt_at", flat=True))
    steps = {round((b - a).total_seconds()) for a, b in itertools.pairwise(due)}
    assert steps == {6 * 3600}  # 4 recipients over 24 h
    assert before - timedelta(seconds=5) <= due[0] and due[-1] <= before + timedelta(hours=24)
    state = Campaign.objects.get(pk=campaign.pk).delayed_domains["y.example"]
    assert state["step"] == 6 * 3600
    assert delay.push_back(campaign, campaign.run_token) == []  # once per domain


def test_new_rows_of_a_delayed_domain_get_spread_due_times(world):
    campaign = services.create_campaign(world.account, world.fields(is_delay=True), State.SENDING)
    now = timezone.now()
    campaign.delayed_domains = {"y.example": {"until": (now + timedelta(hours=24)).isoformat(), "step": 600.0,
                                              "next": (now + timedelta(hours=1)).isoformat()}}
    rows = [SendLog(to="b1@y.example"), SendLog(to="a1@x.example"), SendLog(to="b2@y.example")]
    stored = delay.schedule_new_rows(campaign, rows, now)
    assert [r.status for r in rows] == [SendLog.Status.RETRYING, SendLog.Status.QUEUED, SendLog.Status.RETRYING]
    assert rows[2].next_attempt_at - rows[0].next_attempt_at == timedelta(seconds=600)
    assert stored["y.example"]["next"] == (now + timedelta(hours=1, seconds=1200)).isoformat()
