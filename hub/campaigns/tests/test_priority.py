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


def test_a_claimed_batch_starts_with_its_transactional_rows(world):
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    later = SendLog.objects.create(app=world.app, to="vip@example.com", subject="order", html_body="<p>x</p>")
    batch = outbox.claim_waiting(5)
    assert batch[0].pk == later.pk and [r.priority for r in batch] == [0, 1, 1, 1, 1]



def test_a_drain_hands_back_unstarted_campaign_rows_when_transactional_mail_waits(world):
    """hub.delivery.outbox._wait_for_room with the crew's hand-back (the crew's threads are
    replaced by a stand-in: inside the test's transaction a real crew delivers inline)."""
    from hub.delivery.crew import Crew

    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    rows = outbox.claim_waiting(8)
    crew = Crew(float("inf"), deliver=lambda row, servers: True, size=4)
    crew.queue.extend(rows[2:])  # two on the wire, six waiting for a thread
    polls = []

    def not_yet(n, timeout=None):
        polls.append(timeout)
        if len(polls) == 2:  # a transactional message arrives while the batch is under way
            SendLog.objects.create(app=world.app, to="vip@example.com", subject="order", html_body="<p>x</p>")
        return len(polls) > 5

    crew.wait_backlog_below = not_yet
    outbox._wait_for_room(crew)
    assert len(polls) == 2 and polls[0] == outbox.PRIORITY_POLL_SECONDS
    assert not crew.queue and crew.handed_back == 6
    assert SendLog.objects.filter(campaign_id=campaign.pk, status=SendLog.Status.QUEUED).count() == 6
    (first,) = outbox.claim_waiting(1)
    assert first.to == "vip@example.com"


def test_without_transactional_mail_the_drain_just_waits_for_its_batch(world):
    from hub.delivery.crew import Crew

    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    crew = Crew(float("inf"), deliver=lambda row, servers: True, size=4)
    crew.queue.extend(outbox.claim_waiting(8))
    calls = []
    crew.wait_backlog_below = lambda n, timeout=None: calls.append(timeout) or len(calls) >= 3
    outbox._wait_for_room(crew)
    assert len(calls) == 3 and len(crew.queue) == 8 and crew.handed_back == 0


def test_a_drain_waiting_for_its_last_rows_on_the_wire_claims_transactional_mail(world):
    """hub.delivery.outbox._wait_idle_unless_urgent: a short batch's rows still on the wire
    (a slow server) do not hold a transactional message queued meanwhile."""
    from hub.delivery.crew import Crew

    crew = Crew(float("inf"), deliver=lambda row, servers: True, size=4)
    polls = []

    def on_the_wire(timeout=None):
        polls.append(timeout)
        if len(polls) == 3:
            SendLog.objects.create(app=world.app, to="vip@example.com", subject="order", html_body="<p>x</p>")
        return False  # the slow rows never finish here

    crew.wait_idle = on_the_wire
    assert outbox._wait_idle_unless_urgent(crew) is False
    assert polls == [outbox.PRIORITY_POLL_SECONDS] * 3
    crew.wait_idle = lambda timeout=None: True
    assert outbox._wait_idle_unless_urgent(crew) is True
