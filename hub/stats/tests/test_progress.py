"""A campaign's progress (hub.campaigns.services.progress: its page in the admin, the native
API's progress, V28 list-task) read from the statistics counters, which hub.stats registers:
the same figures as counting the campaign's SendLog rows, also while rows wait; after a
bounce of a sent message the counters keep it in `sent` and show it as `bounced`, while the
send log row became `failed` (docs/statistics.md)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from hub import events
from hub.campaigns import services as campaigns
from hub.campaigns.models import Campaign
from hub.models import SendLog
from hub.stats.report import campaign_outcomes
from hub.tests.test_admin_support import body

from .factory import at
from .world import build


@pytest.fixture
def campaign(account, other, make_app) -> Campaign:
    c, _other = build(account, make_app(account=account).app, other, make_app(account=other).app)
    # The world's five final rows (s1, s2 sent; f1, f2, dup failed) and one still waiting.
    app = SendLog.objects.filter(campaign_id=c.pk).first().app
    SendLog.objects.create(app=app, to="w1@x.example", subject=f"[campaign {c.pk}] template 1 subject 1",
                           campaign_id=c.pk, contact_id=999, priority=1, source=SendLog.Source.CAMPAIGN,
                           created_at=at("2012-03-02 10:00"))
    Campaign.objects.filter(pk=c.pk).update(queued=6, total=14)
    c.refresh_from_db()
    return c


def from_rows(campaign: Campaign) -> campaigns.Progress:
    """The progress as counted from the send log (no counters registered)."""
    campaigns.register_outcome_counter(None)
    try:
        return campaigns.progress(campaign)
    finally:
        campaigns.register_outcome_counter(campaign_outcomes)


def bounce(row: SendLog, failure_type: int) -> None:
    """What hub.inbound.process does for a DSN of a sent single-recipient message: the row
    becomes failed with the type, and `bounced` is told, in one transaction."""
    with transaction.atomic():
        SendLog.objects.filter(pk=row.pk).update(status=SendLog.Status.FAILED, failure_type=failure_type,
                                                 error="bounced after delivery: 550 5.1.1")
        events.emit(events.Event(kind=events.Kind.BOUNCED, email=row.to, at=timezone.now(), app_id=row.app_id,
                                 log_id=row.pk, campaign_id=row.campaign_id, contact_id=row.contact_id,
                                 data={"failure_type": failure_type, "reason": "550 5.1.1", "hard": True}))


def test_progress_reads_the_counters_and_equals_the_rows(campaign):
    p = campaigns.progress(campaign)
    assert (p.sent, p.failed, p.waiting, p.bounced) == (2, 3, 1, 0)
    assert p.failure_types == {1: 1, 8: 1, 3: 1}
    assert p.accounted == campaign.total  # 2 + 3 + 1 + 0 cancelled + 8 skipped
    assert p == from_rows(campaign)
    # A waiting row is sent: it leaves `waiting` for `sent` in both.
    row = SendLog.objects.get(campaign_id=campaign.pk, to="w1@x.example")
    from hub.delivery.attempt import _emit_outcome

    SendLog.objects.filter(pk=row.pk).update(status=SendLog.Status.SENT, sent_at=timezone.now())
    row.refresh_from_db()
    with transaction.atomic():
        _emit_outcome(row, row.status, timezone.now())
    p = campaigns.progress(campaign)
    assert (p.sent, p.failed, p.waiting) == (3, 3, 0) and p == from_rows(campaign)


def test_a_bounce_after_sent_stays_sent_and_is_shown_as_bounced(campaign, su):
    s1 = SendLog.objects.get(campaign_id=campaign.pk, to="s1@x.example")
    bounce(s1, 1)
    p = campaigns.progress(campaign)
    assert (p.sent, p.failed, p.bounced, p.waiting) == (2, 3, 1, 1)
    assert p.failure_types == {1: 2, 8: 1, 3: 1}  # the bounce's type counts
    assert p.accounted == campaign.total
    # The send log: s1 is now failed. sent - bounced and failed + bounced are its counts.
    rows = dict(SendLog.objects.filter(campaign_id=campaign.pk).values_list("status")
                .annotate(n=Count("id")).values_list("status", "n"))
    assert (rows["sent"], rows["failed"]) == (p.sent - p.bounced, p.failed + p.bounced)
    # The campaign's page shows the figures and the bounce on its own line.
    page = body(su.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])))
    assert "<th>sent / contacts</th><td>2 / 14</td>" in page
    assert "<th>failed</th><td>3</td>" in page
    assert "<th>of the sent, bounced later</th><td>1</td>" in page
    assert "<th>waiting or on the way</th><td>1</td>" in page


def test_the_page_without_bounces_has_no_bounce_line(campaign, su):
    page = body(su.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])))
    assert "<th>failed</th><td>3</td>" in page and "bounced later" not in page
