"""Exactly once inside the database: the dispatcher's slice (rows, quota, cursor, counters)
is one transaction fenced on the old cursor and the run token; two dispatchers racing on
the same campaign produce each recipient once; a crash inside a slice leaves nothing."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from hub.campaigns import dispatch, services
from hub.campaigns.models import Campaign, State
from hub.models import SendLog

from .conftest import run_until


def test_two_dispatchers_reading_the_same_checkpoint_commit_once(world):
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    ctx = dispatch.context_for(campaign)
    at = dispatch.now()
    a = Campaign.objects.get(pk=campaign.pk)
    b = Campaign.objects.get(pk=campaign.pk)
    slice_a, slice_b = dispatch.read_slice(a, 4, ctx, at), dispatch.read_slice(b, 4, ctx, at)
    assert [r.contact_id for r in slice_a.rows] == [r.contact_id for r in slice_b.rows]
    assert dispatch.commit_slice(a, campaign.run_token, slice_a, None, at) == 4
    with pytest.raises(dispatch.Fenced):
        dispatch.commit_slice(b, campaign.run_token, slice_b, None, at)
    assert SendLog.objects.filter(campaign_id=campaign.pk).count() == 4
    assert Campaign.objects.get(pk=campaign.pk).queued == 4


def test_the_outbox_refuses_a_second_row_for_a_contact(world):
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    row = SendLog.objects.filter(campaign_id=campaign.pk).first()
    row.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        row.save()


def test_a_crash_inside_a_slice_leaves_nothing_and_the_next_run_continues(world, run_queue, monkeypatch):
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    real = dispatch.insert_rows

    def crash(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt("killed")  # after the INSERT, before the commit

    monkeypatch.setattr(dispatch, "insert_rows", crash)
    with pytest.raises(KeyboardInterrupt):
        dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    monkeypatch.undo()
    fresh = Campaign.objects.get(pk=campaign.pk)
    assert (fresh.cursor_list, fresh.cursor_contact, fresh.queued, fresh.total) == (0, 0, 0, 0)
    assert not SendLog.objects.filter(campaign_id=campaign.pk).exists()
    campaign = run_until(run_queue, campaign, (State.DONE,))
    assert sorted(m.rcpt_tos[0] for m in world.sink.messages) == sorted(
        set(SendLog.objects.filter(campaign_id=campaign.pk).values_list("to", flat=True)))
    assert campaign.sent_count == 8
