"""Transactional mail never waits behind a campaign: claims take priority 0 first."""

from __future__ import annotations

from hub.campaigns import dispatch, services
from hub.campaigns.models import State
from hub.delivery import outbox
from hub.models import SendLog


def test_transactional_row_is_claimed_before_older_campaign_rows(world):
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    assert SendLog.objects.filter(campaign_id=campaign.pk, status=SendLog.Status.QUEUED).count() == 8
    later = SendLog.objects.create(app=world.app, to="vip@example.com", subject="order", html_body="<p>x</p>")
    (first,) = outbox.claim_waiting(1)
    assert first.pk == later.pk and first.pk > SendLog.objects.filter(campaign_id=campaign.pk).order_by("id")[0].pk
    nxt = outbox.claim_waiting(3)
    assert [r.campaign_id for r in nxt] == [campaign.pk] * 3
    assert [r.pk for r in nxt] == sorted(r.pk for r in nxt)

