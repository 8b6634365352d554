"""A whole campaign through the real drain to an in-process sink: two lists with overlaps,
unsubscribed and suppressed contacts, a range, two templates, two subjects; every contact
accounted for, no duplicates at the sink, content rendered at delivery."""

from __future__ import annotations

from collections import Counter

from hub.campaigns import services
from hub.campaigns.models import State
from hub.contacts.models import Contact
from hub.models import SendLog
from hub.tests.test_claim_suppression import reads

from .conftest import add, run_until


def test_campaign_over_two_lists_is_delivered_once_to_each_recipient(world, run_queue):
    # Order: list A (ids ascending) a1..a6, then B b1..b4, a2 (dup), a3 (dup).
    # Eligible positions: a1=1 a2=2 a3=3 a5=4 a6=5 b1=6 b2=7 b3=8 b4=9; range 2..8.
    campaign = services.create_campaign(world.account, world.fields(send_qty_start=2, send_qty=8), State.SENDING)
    campaign = run_until(run_queue, campaign, (State.DONE,))
    received = [m.rcpt_tos[0] for m in world.sink.messages]
    assert Counter(received).most_common(1)[0][1] == 1  # nobody twice
    assert sorted(received) == sorted(["a2@x.example", "a5@x.example", "a6@x.example", "b1@y.example",
                                       "b2@y.example", "b3@y.example"])
    assert campaign.skipped == {"unsubscribed": 1, "duplicate": 2, "range": 2, "suppressed": 1}
    assert campaign.total == 12
    p = services.progress(campaign)
    assert (p.sent, p.failed, p.waiting) == (6, 0, 0)
    assert p.sent + p.failed + sum(campaign.skipped.values()) == campaign.total
    assert campaign.sent_count == 6 and campaign.time_end is not None
    # Round-robin templates and subjects, counted at dispatch.
    t1, t2 = (t.pk for t in world.templates)
    assert campaign.per_template == {str(t1): 3, str(t2): 3}
    assert campaign.per_subject == {f"{t1}:1": 2, f"{t1}:2": 1, f"{t2}:1": 3}
    subjects = Counter(str(m.message["Subject"]) for m in world.sink.messages)
    assert subjects == Counter({"你好 朋友": 2, "十一月新品": 1, "第二封": 3})


def test_rendered_at_delivery_with_campaign_headers(world, run_queue):
    Contact.objects.filter(email="a1@x.example").update(fullname="<script>alert(1)</script>")
    campaign = services.create_campaign(world.account, world.fields(send_qty=1, send_replyto="reply@example.com"),
                                        State.SENDING)
    run_until(run_queue, campaign, (State.DONE,))
    (msg,) = [m.message for m in world.sink.messages]
    assert msg["To"].addresses[0].addr_spec == "a1@x.example"
    assert msg["From"].addresses[0].display_name == "Acme 商城"
    assert str(msg["Reply-To"]) == "reply@example.com"
    assert msg["List-Unsubscribe"].strip().startswith("<https://mail.example.com/unsubscribe/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Disposition-Notification-To" not in msg
    html = msg.get_body(("html",)).get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert str(msg["Subject"]) == "你好 <script>alert(1)</script>"  # a subject is text, not HTML
    # The outbox row stores no body: a marker and the ids.
    row = SendLog.objects.get(campaign_id=campaign.pk)
    assert (row.html_body, row.text_body, row.priority, row.contact_id) == ("", "", 1, row.contact_id)
    assert row.subject.startswith(f"[campaign {campaign.pk}] template ")


def test_unsubscribed_after_queueing_is_still_sent_but_contact_gone_fails_cleanly(world, run_queue):
    campaign = services.create_campaign(world.account, world.fields(send_qty=2), State.SENDING)
    from hub.campaigns import dispatch

    dispatch.run(campaign.pk, campaign.run_token, budget=0.2)
    Contact.objects.filter(email="a1@x.example").delete()
    campaign = run_until(run_queue, campaign, (State.DONE,))
    row = SendLog.objects.get(campaign_id=campaign.pk, to="a1@x.example")
    assert row.status == SendLog.Status.FAILED and "not renderable" in row.error
    assert [m.rcpt_tos[0] for m in world.sink.messages] == ["a2@x.example"]


def test_new_contacts_append_to_the_range_order(world, run_queue):
    """The documented order is (list, contact id): a contact added later comes last."""
    add(world.account, world.lists[0], ["a0@x.example"])
    campaign = services.create_campaign(world.account, world.fields(send_qty=1), State.SENDING)
    run_until(run_queue, campaign, (State.DONE,))
    assert [m.rcpt_tos[0] for m in world.sink.messages] == ["a1@x.example"]


def test_read_receipt_and_no_unsubscribe_headers(world, run_queue):
    from hub.campaigns.models import CampaignSettings

    CampaignSettings.objects.create(account=world.account, read_receipts=True)
    campaign = services.create_campaign(world.account, world.fields(
        send_qty=1, is_need_receipt=True, subs_link=False, send_replyto="reply@example.com"), State.SENDING)
    run_until(run_queue, campaign, (State.DONE,))
    (msg,) = [m.message for m in world.sink.messages]
    assert str(msg["Disposition-Notification-To"]) == "<reply@example.com>"
    assert "List-Unsubscribe" not in msg and "List-Unsubscribe-Post" not in msg
    assert msg["X-SMTPHub-Campaign"] == campaign.sn


def test_a_claimed_batch_reads_its_contacts_in_one_query(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from hub.campaigns import dispatch
    from hub.campaigns.render import render_row
    from hub.delivery import outbox

    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=1.0)
    with CaptureQueriesContext(connection) as claiming:
        rows = outbox.claim_waiting(50)
    with CaptureQueriesContext(connection) as rendering:
        parts = [render_row(row) for row in rows]
    assert len(rows) == SendLog.objects.filter(campaign_id=campaign.pk).count() > 1
    assert sum(reads("contacts_contact", q["sql"]) for q in claiming.captured_queries) == 1
    assert not any(reads("contacts_contact", q["sql"]) for q in rendering.captured_queries)
    assert sorted(p.to_name for p in parts) == sorted(
        Contact.objects.get(pk=row.contact_id).fullname for row in rows)
