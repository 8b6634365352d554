"""The statistics tests' world (imported by test_statistic*.py): tenant A (metered) with a
campaign (template with subjects A|B, skipped addresses) and transactional mail on
2012-03-02, one failure on 2012-03-03; tenant B with mail of its own on 2012-03-02.

Expected on 2012-03-02 for A:
  campaign: s1, s2 sent; f1 (type 1), f2 (type 8), dup (type 3) failed
  other:    t1, t2 sent; t3 refused (type 1) while t2 was sent; dup (type 3), conn (type 10) failed
  -> sent 4, failed 6, charged 10, given back 5 (the failed rows; t3's row was sent)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hub.campaigns.models import Campaign, State
from hub.mailtemplates import services as templates
from hub.models import Account, SendLog
from hub.stats.tests.factory import at, record

S, F = SendLog.Status.SENT, SendLog.Status.FAILED
HTML = '<p>你好</p><a href="{{unsubscribe_url}}">退订</a>'


@dataclass
class World:
    a: object  # api.conftest.Tenant
    b: object
    campaign: Campaign
    other_campaign: Campaign


def _campaign(account, template, name: str) -> Campaign:
    c = Campaign.objects.create(account=account, name=name, template_ids=[template.pk], state=State.DONE,
                                send_time=at("2012-03-02 09:00"), time_start=at("2012-03-02 09:00"),
                                skipped={"suppressed": 2, "invalid": 1, "unsubscribed": 5})
    c.sn = f"20120302090000-{account.pk}-{c.pk}"
    c.save(update_fields=["sn"])
    return c


@pytest.fixture
def world(tenant_a, tenant_b) -> World:
    Account.objects.filter(pk=tenant_a.account.pk).update(quota_type=Account.QuotaType.TOTAL, quota_total=1000,
                                                          quota_available=1000)
    tenant_a.account.refresh_from_db()
    tpl = templates.create_template(tenant_a.account, name="双十一", subjects="A|B", html=HTML)
    c = _campaign(tenant_a.account, tpl, "双十一")
    app = tenant_a.app
    day = at("2012-03-02 10:00")
    record(app, "s1@x.example", S, day, campaign_id=c.pk, template_id=tpl.pk, subject_no=1)
    record(app, "s2@x.example", S, day, campaign_id=c.pk, template_id=tpl.pk, subject_no=2)
    record(app, "f1@x.example", F, day, failure_type=1, campaign_id=c.pk, template_id=tpl.pk, subject_no=1)
    record(app, "f2@x.example", F, at("2012-03-02 11:30"), failure_type=8, campaign_id=c.pk, template_id=tpl.pk,
           subject_no=2)
    record(app, "dup@x.example", F, day, failure_type=3, campaign_id=c.pk, template_id=tpl.pk, subject_no=1)
    record(app, "t1@x.example", S, day)
    record(app, "t2@x.example, t3@x.example", S, day, refused={"t3@x.example": [550, "5.1.1 User unknown"]})
    record(app, "dup@x.example", F, day, failure_type=3)
    record(app, "conn@x.example", F, day, failure_type=10)
    record(app, "later@x.example", F, at("2012-03-03 08:00"), failure_type=2)
    b_tpl = templates.create_template(tenant_b.account, name="B", subjects="B", html=HTML)
    other = _campaign(tenant_b.account, b_tpl, "B's")
    record(tenant_b.app, "b1@y.example", F, day, failure_type=1, campaign_id=other.pk, template_id=b_tpl.pk)
    record(tenant_b.app, "b2@y.example", S, day)
    return World(tenant_a, tenant_b, c, other)


def snapshot() -> tuple:
    """What a refused call must leave as it was."""
    from hub.stats.models import Failure, Tally

    return (list(Tally.objects.order_by("pk").values()), Failure.objects.count(), SendLog.objects.count(),
            list(Campaign.objects.order_by("pk").values_list("pk", "state", "sn")))
