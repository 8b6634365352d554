"""A small world of outcomes the report tests share (the API tests too, through
api/v28/tests/conftest_stats.py): account A (metered) with a campaign (template with
subjects A|B, skipped addresses) and transactional mail on 2012-03-02, one failure on
2012-03-03; account B with mail of its own on 2012-03-02.

Expected on 2012-03-02 for A:
  campaign: s1, s2 sent; f1 (type 1), f2 (type 8, at 11:30), dup (type 3) failed
  other:    t1, t2 sent; t3 refused (type 1) while t2 was sent; dup (type 3), conn (type 10) failed
  -> sent 4, failed 6, charged 10, given back 5 (the failed rows; t3's row was sent)."""

from __future__ import annotations

from hub.campaigns.models import Campaign, State
from hub.mailtemplates import services as templates
from hub.models import Account, SendLog

from .factory import at, record

S, F = SendLog.Status.SENT, SendLog.Status.FAILED
HTML = '<p>你好</p><a href="{{unsubscribe_url}}">退订</a>'


def campaign(account, template, name: str) -> Campaign:
    c = Campaign.objects.create(account=account, name=name, template_ids=[template.pk], state=State.DONE,
                                send_time=at("2012-03-02 09:00"), time_start=at("2012-03-02 09:00"),
                                skipped={"suppressed": 2, "invalid": 1, "unsubscribed": 5})
    c.sn = f"20120302090000-{account.pk}-{c.pk}"
    c.save(update_fields=["sn"])
    return c


def build(account_a: Account, app_a, account_b: Account, app_b) -> tuple[Campaign, Campaign]:
    Account.objects.filter(pk=account_a.pk).update(quota_type=Account.QuotaType.TOTAL, quota_total=1000,
                                                   quota_available=1000)
    account_a.refresh_from_db()
    tpl = templates.create_template(account_a, name="双十一", subjects="A|B", html=HTML)
    c = campaign(account_a, tpl, "双十一")
    day = at("2012-03-02 10:00")
    record(app_a, "s1@x.example", S, day, campaign_id=c.pk, template_id=tpl.pk, subject_no=1)
    record(app_a, "s2@x.example", S, day, campaign_id=c.pk, template_id=tpl.pk, subject_no=2)
    record(app_a, "f1@x.example", F, day, failure_type=1, campaign_id=c.pk, template_id=tpl.pk, subject_no=1)
    record(app_a, "f2@x.example", F, at("2012-03-02 11:30"), failure_type=8, campaign_id=c.pk, template_id=tpl.pk,
           subject_no=2)
    record(app_a, "dup@x.example", F, day, failure_type=3, campaign_id=c.pk, template_id=tpl.pk, subject_no=1)
    record(app_a, "t1@x.example", S, day)
    record(app_a, "t2@x.example, t3@x.example", S, day, refused={"t3@x.example": [550, "5.1.1 User unknown"]})
    record(app_a, "dup@x.example", F, day, failure_type=3)
    record(app_a, "conn@x.example", F, day, failure_type=10)
    record(app_a, "later@x.example", F, at("2012-03-03 08:00"), failure_type=2)
    b_tpl = templates.create_template(account_b, name="B", subjects="B", html=HTML)
    other = campaign(account_b, b_tpl, "B's")
    record(app_b, "b1@y.example", F, day, failure_type=1, campaign_id=other.pk, template_id=b_tpl.pk)
    record(app_b, "b2@y.example", S, day)
    return c, other


def snapshot() -> tuple:
    """What a refused call must leave as it was."""
    from hub.stats.models import Failure, Tally

    return (list(Tally.objects.order_by("pk").values()), Failure.objects.count(), SendLog.objects.count(),
            list(Campaign.objects.order_by("pk").values_list("pk", "state", "sn")))
