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


def test_a_worker_hands_back_campaign_rows_when_transactional_mail_waits(world, monkeypatch):
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    rows = outbox.claim_waiting(8)
    delivered = []
    real = outbox.deliver_row

    def deliver(row, servers):
        delivered.append(row.pk)
        if len(delivered) == 2:  # a transactional message arrives while the batch is under way
            SendLog.objects.create(app=world.app, to="vip@example.com", subject="order", html_body="<p>x</p>")
        real(row, servers)

    monkeypatch.setattr(outbox, "deliver_row", deliver)
    outbox.deliver_claimed(rows, deadline=float("inf"))
    assert len(delivered) == outbox.PRIORITY_CHECK_EVERY  # the rest went back to the queue
    assert SendLog.objects.filter(campaign_id=campaign.pk, status=SendLog.Status.QUEUED).count() == 3
    (first,) = outbox.claim_waiting(1)
    assert first.to == "vip@example.com"
