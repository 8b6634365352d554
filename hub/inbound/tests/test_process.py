"""Reports acting on messages (hub.inbound.process): matched by VERP, by the hub's headers or
by Message-ID; the recipient's outcome and failure type on its SendLog row; the account's
suppression policy; `bounced` / `complained` events; and every refusal changing nothing."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from hub.events import Kind
from hub.inbound import process
from hub.inbound.models import BounceMailbox, Report
from hub.models import FailureType, SendLog, SoftBounce, Suppression, SuppressionPolicy

from .conftest import sample


def nothing_written(row: SendLog) -> None:
    before = row.status
    row.refresh_from_db()
    assert row.status == before and row.refused_recipients == {}
    assert not Suppression.objects.exists() and not SoftBounce.objects.exists()


def test_dsn_to_the_verp_address_marks_the_recipient_bounced(sent, told):
    row = sent.row()
    reports = process.process(sample("postfix-user-unknown.eml", row), verp_log_id=row.id)

    assert [(r.kind, r.email, r.matched_by, r.failure_type, r.hard) for r in reports] == [
        ("bounce", "ghost@example.com", "verp", FailureType.NOT_EXIST, True)]
    row.refresh_from_db()
    assert (row.status, row.failure_type) == (SendLog.Status.FAILED, FailureType.NOT_EXIST)
    assert row.error.startswith("bounced after delivery: 5.1.1 550 5.1.1")
    assert row.refused_recipients["ghost@example.com"][0] == 550
    entry = Suppression.objects.get()
    assert (entry.account_id, entry.email, entry.cause, entry.log_id) == (
        sent.app.account_id, "ghost@example.com", "hard_bounce", row.id)
    assert [(e.kind, e.email, e.log_id, dict(e.data)) for e in told] == [
        (Kind.BOUNCED, "ghost@example.com", row.id,
         {"failure_type": FailureType.NOT_EXIST, "reason": reports[0].status + " " + reports[0].diagnostic,
          "hard": True})]
    assert told[0].account_id == sent.app.account_id


def test_the_same_report_twice_counts_once(sent, told):
    row = sent.row()
    raw = sample("postfix-user-unknown.eml", row)
    assert len(process.process(raw, verp_log_id=row.id)) == 1
    assert process.process(raw, verp_log_id=row.id) == []
    assert Report.objects.count() == 1 and Suppression.objects.count() == 1 and len(told) == 1


def test_matched_by_the_returned_headers_from_an_imap_mailbox(sent, account):
    row = sent.row()
    mailbox = BounceMailbox.objects.create(account=account, name="b", host="imap.example", username="u")
    reports = process.process(sample("exim-plain.eml", row, RETURN_PATH="noreply@example.org"), mailbox=mailbox)
    assert [(r.matched_by, r.source, r.mailbox_id) for r in reports] == [("header", "imap", mailbox.id)]
    assert Suppression.objects.filter(cause="hard_bounce").count() == 1


def test_matched_by_message_id_alone(sent, account):
    row = sent.row()
    mailbox = BounceMailbox.objects.create(account=account, name="b", host="imap.example", username="u")
    raw = sample("gmail-dsn.eml", row, RETURN_PATH="noreply@example.org", LOG_ID="", APP_ID="")
    assert [r.matched_by for r in process.process(raw, mailbox=mailbox)] == ["message-id"]


def test_another_accounts_mailbox_matches_nothing(sent, other):
    row = sent.row()
    mailbox = BounceMailbox.objects.create(account=other, name="b", host="imap.example", username="u")
    reports = process.process(sample("postfix-user-unknown.eml", row), mailbox=mailbox)
    # Kept for the admin as unmatched, with the mailbox's account; the message is untouched.
    assert [(r.log_id, r.account_id, r.matched_by) for r in reports] == [(None, other.id, "")]
    nothing_written(row)


def test_forged_headers_do_not_match(sent, account):
    row = sent.row()
    mailbox = BounceMailbox.objects.create(account=account, name="b", host="imap.example", username="u")
    # The right log id with the wrong app id or Message-ID, and no VERP address.
    for extra in ({"APP_ID": str(sent.app.id + 1)}, {"MESSAGE_ID": "<forged@example.org>"}):
        raw = sample("exim-plain.eml", row, RETURN_PATH="noreply@example.org", **{"MESSAGE_ID": "<x@y>", **extra})
        assert [r.log_id for r in process.process(raw, mailbox=mailbox)] == [None]
    nothing_written(row)


def test_a_forged_verp_address_in_the_copy_matches_nothing(sent, account):
    row = sent.row()
    mailbox = BounceMailbox.objects.create(account=account, name="b", host="imap.example", username="u")
    forged = f"b-{row.id:x}-{'0' * 20}@bounce.example"
    raw = sample("exim-plain.eml", row, RETURN_PATH=forged, LOG_ID="", MESSAGE_ID="<x@y>")
    assert [r.log_id for r in process.process(raw, mailbox=mailbox)] == [None]
    nothing_written(row)


def test_a_recipient_the_message_never_had_is_ignored(sent, told):
    row = sent.row()
    assert process.process(sample("postfix-user-unknown.eml", row, rcpt="stranger@example.com"),
                           verp_log_id=row.id) == []
    nothing_written(row)
    assert not Report.objects.exists() and told == []


def test_one_recipient_of_several_bounced(sent):
    row = sent.row(to="alice@example.com, ghost@example.com")
    process.process(sample("postfix-user-unknown.eml", row, rcpt="ghost@example.com"), verp_log_id=row.id)
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT  # alice still got it
    assert list(row.refused_recipients) == ["ghost@example.com"]


def test_a_delay_is_recorded_and_changes_nothing(sent, told):
    row = sent.row()
    reports = process.process(sample("netease-delayed.eml", row), verp_log_id=row.id)
    assert [r.kind for r in reports] == ["delay"]
    nothing_written(row)
    assert told == []


def test_soft_bounces_suppress_after_n_in_m_days(sent, account):
    SuppressionPolicy.objects.create(account=account, soft_bounce_limit=2, soft_bounce_days=3)
    first, second, third = sent.row(), sent.row(), sent.row()
    process.process(sample("qq-mailbox-full.eml", first), verp_log_id=first.id)
    assert not Suppression.objects.exists()
    assert SoftBounce.objects.count() == 1
    first.refresh_from_db()
    assert first.failure_type == FailureType.OVER_QUOTA
    # Older than the window: forgotten, so the next one is the first again.
    SoftBounce.objects.update(at=timezone.now() - timedelta(days=4))
    process.process(sample("qq-mailbox-full.eml", second), verp_log_id=second.id)
    assert not Suppression.objects.exists()
    process.process(sample("qq-mailbox-full.eml", third), verp_log_id=third.id)
    entry = Suppression.objects.get()
    assert (entry.cause, entry.failure_type, entry.log_id) == ("soft_bounce", FailureType.OVER_QUOTA, third.id)
    assert "2 soft bounces in 3 days" in entry.reason


def test_policy_can_keep_hard_bounces_off_the_list(sent, account):
    SuppressionPolicy.objects.create(account=account, hard_bounces=False)
    row = sent.row()
    process.process(sample("postfix-user-unknown.eml", row), verp_log_id=row.id)
    row.refresh_from_db()
    assert row.status == SendLog.Status.FAILED  # the outcome is still recorded
    assert not Suppression.objects.exists()


def test_complaint_suppresses_and_is_told(sent, told):
    row = sent.row()
    reports = process.process(sample("arf-yahoo.eml", row), verp_log_id=row.id)
    assert [(r.kind, r.feedback_type, r.failure_type) for r in reports] == [("complaint", "abuse",
                                                                             FailureType.COMPLAINT)]
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT  # it was delivered: a complaint does not undo that
    entry = Suppression.objects.get()
    assert (entry.cause, entry.bulk_only, entry.failure_type) == ("complaint", False, FailureType.COMPLAINT)
    assert [(e.kind, e.email, dict(e.data)) for e in told] == [(Kind.COMPLAINED, "ghost@example.com",
                                                                {"feedback_type": "abuse"})]


def test_jmrp_complaint_without_recipient_uses_the_matched_message(sent, account):
    row = sent.row()
    mailbox = BounceMailbox.objects.create(account=account, name="fbl", host="imap.example", username="u")
    reports = process.process(sample("arf-outlook-jmrp.eml", row), mailbox=mailbox)
    assert [(r.kind, r.email, r.matched_by) for r in reports] == [("complaint", "ghost@example.com", "verp")]
    assert Suppression.objects.get().cause == "complaint"


def test_aol_complaint_with_policy_off_is_only_recorded(sent, account):
    SuppressionPolicy.objects.create(account=account, complaints=False)
    row = sent.row()
    assert [r.kind for r in process.process(sample("arf-aol.eml", row), verp_log_id=row.id)] == ["complaint"]
    assert not Suppression.objects.exists()


def test_not_a_report_writes_nothing(sent, told):
    row = sent.row()
    for raw in (sample("arf-dmarc-failure.eml", row), b"Subject: hi\r\n\r\nhello\r\n"):
        assert process.process(raw, verp_log_id=row.id) == []
    nothing_written(row)
    assert not Report.objects.exists() and told == []
