"""The per-account suppression policy on synchronous replies, and where the list is honoured:
soft bounces suppress after N in M days; the SMTP submission path refuses suppressed
recipients of every app of the account; an unsubscribe (hub.events) suppresses campaign mail
only; the admin lists, filters and removes entries (and removing forgets soft bounces)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from api.tests.test_send_api import good_fields, post
from hub import events, sending
from hub.delivery import suppression
from hub.models import FailureType, SendLog, SoftBounce, Suppression, SuppressionPolicy
from hub.refusals import Refusal

FULL = "552 5.2.2 <full@example.com>: Mailbox is full"


@pytest.fixture
def full_box(smtp_sink_factory, make_server, make_app, account):
    sink = smtp_sink_factory(refuse={"full@example.com": FULL, "ghost@example.com": "550 5.1.1 User unknown"})
    return sink, make_app(make_server(sink), account=account)


def send(client, p, to: str):
    return post(client, "/api.php", good_fields(p.creds, to=to))


def test_soft_bounces_suppress_after_the_limit(client, full_box, run_queue, account):
    SuppressionPolicy.objects.create(account=account, soft_bounce_limit=2, soft_bounce_days=7)
    _sink, p = full_box
    for _ in range(2):
        assert send(client, p, "full@example.com").status_code == 200
        assert run_queue() == 1
    rows = list(SendLog.objects.order_by("id"))
    assert [r.failure_type for r in rows] == [FailureType.OVER_QUOTA] * 2
    entry = Suppression.objects.get()
    assert (entry.cause, entry.log_id, entry.failure_type) == ("soft_bounce", rows[1].id, FailureType.OVER_QUOTA)
    r = send(client, p, "full@example.com")
    assert (r.status_code, r.json()["error"]) == (400, "recipient_suppressed")
    assert SendLog.objects.count() == 2  # the refusal wrote nothing


def test_soft_bounces_outside_the_window_do_not_count(client, full_box, run_queue, account):
    SuppressionPolicy.objects.create(account=account, soft_bounce_limit=2, soft_bounce_days=1)
    _sink, p = full_box
    send(client, p, "full@example.com")
    run_queue()
    SoftBounce.objects.update(at=timezone.now() - timedelta(days=2))
    send(client, p, "full@example.com")
    run_queue()
    assert not Suppression.objects.exists()
    assert SoftBounce.objects.count() == 1  # the old one was pruned


def test_defaults_come_from_settings(account, settings):
    settings.HUB_SOFT_BOUNCE_LIMIT, settings.HUB_SOFT_BOUNCE_DAYS = 5, 9
    assert suppression.policy(account.id) == suppression.Policy(soft_bounce_limit=5, soft_bounce_days=9)
    assert SuppressionPolicy(account=account).soft_bounce_limit == 5  # a new row starts from them too


def test_limit_zero_never_suppresses_soft_bounces(account):
    SuppressionPolicy.objects.create(account=account, soft_bounce_limit=0)
    for _ in range(5):
        assert suppression.record_failure(account.id, "full@example.com", FailureType.OVER_QUOTA, hard=False) is None
    assert not Suppression.objects.exists() and not SoftBounce.objects.exists()


def test_sender_side_failures_never_count(account):
    for kind in (FailureType.REFUSED, FailureType.SPAM_CONTENT, FailureType.CONNECT_ERROR):
        assert suppression.record_failure(account.id, "a@example.com", kind, hard=False) is None
    assert not SoftBounce.objects.exists()


def test_smtp_submission_refuses_the_accounts_suppressed_recipients(make_server, make_app, account, other):
    server = make_server()
    app, sibling = make_app(server, account=account).app, make_app(server, name="s", account=account).app
    foreign = make_app(server, name="f", account=other).app
    Suppression.objects.create(app=sibling, email="gone@example.com", cause="complaint")
    Suppression.objects.create(account=account, email="reader@example.com", cause="unsubscribe", bulk_only=True)
    with pytest.raises(Refusal) as refused:
        sending.check_recipient(app, "Gone@Example.com")
    assert refused.value.error == "recipient_suppressed"
    assert sending.check_recipient(app, "reader@example.com") == "reader@example.com"  # transactional
    assert sending.check_recipient(foreign, "gone@example.com") == "gone@example.com"


def test_an_unsubscribe_event_suppresses_campaign_mail(account, make_server, make_app):
    app = make_app(make_server(), account=account).app
    events.emit(events.Event(kind=events.Kind.UNSUBSCRIBED, email="reader@example.com", at=timezone.now(),
                             app_id=app.id, data={"how": "link"}))
    entry = Suppression.objects.get()
    assert (entry.account_id, entry.cause, entry.bulk_only, entry.reason) == (
        account.id, "unsubscribe", True, "unsubscribed (link)")
    # A complaint later makes it a full suppression.
    suppression.record_complaint(account.id, "reader@example.com")
    entry.refresh_from_db()
    assert (entry.cause, entry.bulk_only) == ("complaint", False)


def test_unsubscribes_off_in_the_policy(account):
    SuppressionPolicy.objects.create(account=account, unsubscribes=False)
    events.emit(events.Event(kind=events.Kind.UNSUBSCRIBED, email="reader@example.com", at=timezone.now(),
                             account_id=account.id))
    assert not Suppression.objects.exists()


def test_admin_lists_filters_and_removes(client, su, full_box, run_queue, account):
    _sink, p = full_box
    send(client, p, "ghost@example.com")
    run_queue()
    SoftBounce.objects.create(account=account, email="ghost@example.com")
    Suppression.objects.create(account=account, email="reader@example.com", cause="unsubscribe", bulk_only=True)
    page = su.get("/admin/hub/suppression/", {"cause__exact": "hard_bounce"})
    assert page.status_code == 200
    assert b"ghost@example.com" in page.content and b"reader@example.com" not in page.content
    entry = Suppression.objects.get(email="ghost@example.com")
    r = su.post(f"/admin/hub/suppression/{entry.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert list(Suppression.objects.values_list("email", flat=True)) == ["reader@example.com"]
    assert not SoftBounce.objects.exists()
    assert send(client, p, "ghost@example.com").json()["code"] == 0  # allowed again
    assert su.get("/admin/hub/suppressionpolicy/add/").status_code == 200


@pytest.mark.parametrize("script,suppressed", [
    ({"data_replies": ["552 1 Requested mail action aborted, mailbox not found"]}, True),   # Yahoo, after DATA
    ({"mail_replies": ["550 5.1.1 sender address rejected: user unknown"]}, False),         # about the sender
])
def test_a_refusal_after_data_is_the_single_recipients(scripted_smtp, make_server, make_app, account, script,
                                                       suppressed):
    from hub.delivery.outbox import deliver_batch
    from hub.tests.test_retry import ScriptedHandler, scripted_server_record

    smtp = scripted_smtp(ScriptedHandler(**script))
    app = make_app(scripted_server_record(make_server, smtp), account=account).app
    row = SendLog.objects.create(app=app, to="gone@yahoo.example", subject="s", html_body="x")
    deliver_batch([row.id])
    row.refresh_from_db()
    assert row.status == SendLog.Status.FAILED
    assert Suppression.objects.filter(account=account, email="gone@yahoo.example").exists() is suppressed


def test_a_deferred_soft_bounce_counts_once_when_final(scripted_smtp, make_server, make_app, account, settings):
    from hub.delivery.outbox import deliver_batch
    from hub.tests.test_retry import ScriptedHandler, make_due, scripted_server_record

    settings.HUB_RETRY_SCHEDULE = [0, 0]
    SuppressionPolicy.objects.create(account=account, soft_bounce_limit=2)
    smtp = scripted_smtp(ScriptedHandler(rcpt_replies={"full@example.com": "452 4.2.2 Mailbox is full"}))
    app = make_app(scripted_server_record(make_server, smtp), account=account).app
    row = SendLog.objects.create(app=app, to="full@example.com", subject="s", html_body="x")
    for _ in range(5):  # bounded: two retries, then failed
        deliver_batch([row.id])
        row.refresh_from_db()
        if row.status == SendLog.Status.FAILED:
            break
        make_due(row)
    assert row.status == SendLog.Status.FAILED and row.attempts == 3
    assert SoftBounce.objects.count() == 1  # not one per attempt
    assert not Suppression.objects.exists()
