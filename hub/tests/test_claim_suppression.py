"""A delivery re-checks the suppression list when it claims a message (hub.delivery.attempt):
a message accepted just before its recipient was suppressed does not go to them. All
suppressed: the row ends `failed` with type 6 (on the list) or 7 (complained), the quota it
took is refunded, nothing reaches the server. Some suppressed: the others get it. An
unsubscribe stops campaign rows only."""

from __future__ import annotations

import re

import pytest

from api.tests.test_send_api import good_fields, post
from hub.models import Account, FailureType, SendLog, Suppression

T = Account.QuotaType


@pytest.fixture
def metered(smtp_sink, make_server, make_app):
    account = Account.objects.create(name="metered", quota_type=T.TOTAL, quota_total=10, quota_available=10)
    return smtp_sink, account, make_app(make_server(smtp_sink), account=account)


def accept(client, p, **fields) -> SendLog:
    r = post(client, "/api.php", good_fields(p.creds, **fields))
    assert r.status_code == 200 and r.json()["code"] == 0, r.content
    return SendLog.objects.get(pk=r.json()["id"])


@pytest.mark.parametrize("cause,failure", [("hard_bounce", FailureType.BLACKLIST),
                                           ("complaint", FailureType.COMPLAINT),
                                           ("manual", FailureType.BLACKLIST)])
def test_suppressed_after_acceptance_nothing_is_sent(client, metered, run_queue, told, cause, failure):
    sink, account, p = metered
    row = accept(client, p, to="late@example.com")
    assert Account.objects.get(pk=account.pk).quota_available == 9
    Suppression.objects.create(account=account, email="late@example.com", cause=cause)

    assert run_queue() == 1

    row.refresh_from_db()
    assert sink.messages == []
    assert (row.status, row.failure_type, row.attempts, row.smtp_server_id) == (
        SendLog.Status.FAILED, failure, 0, None)
    assert row.error.startswith(f"suppressed by the hub: {cause}") and "nothing was sent" in row.error
    assert Account.objects.get(pk=account.pk).quota_available == 10  # refunded, once
    assert [(e.kind, e.email, e.data["failure_type"]) for e in told] == [("failed", "late@example.com",
                                                                                 failure)]
    assert not row.delivery_attempts.exists()


def test_only_the_suppressed_recipient_is_dropped(client, metered, run_queue):
    sink, account, p = metered
    row = accept(client, p, to="alice@example.com", cc="late@example.com")
    Suppression.objects.create(account=account, email="late@example.com", cause="complaint")

    assert run_queue() == 1

    row.refresh_from_db()
    assert [m.rcpt_tos for m in sink.messages] == [["alice@example.com"]]
    assert row.status == SendLog.Status.SENT
    assert row.refused_recipients == {"late@example.com": [None, "suppressed by the hub: complaint"]}
    # The header still names both (the message is the one accepted); only the envelope changed.
    assert "late@example.com" in sink.messages[0].message["Cc"]


def test_an_unsubscribe_does_not_stop_transactional_mail(client, metered, run_queue):
    sink, account, p = metered
    accept(client, p, to="reader@example.com")
    Suppression.objects.create(account=account, email="reader@example.com", cause="unsubscribe", bulk_only=True)
    assert run_queue() == 1
    assert [m.rcpt_tos for m in sink.messages] == [["reader@example.com"]]


def test_an_unsubscribe_stops_a_queued_campaign_row(metered, run_queue):
    from hub.delivery.outbox import deliver_batch

    sink, account, p = metered
    row = SendLog.objects.create(app=p.app, to="reader@example.com", subject="s", html_body="x", campaign_id=7,
                                 contact_id=9, priority=1, source=SendLog.Source.CAMPAIGN)
    Suppression.objects.create(account=account, email="reader@example.com", cause="unsubscribe", bulk_only=True)
    deliver_batch([row.id])
    row.refresh_from_db()
    assert (row.status, row.failure_type) == (SendLog.Status.FAILED, FailureType.BLACKLIST)
    assert sink.messages == []


def test_another_accounts_list_does_not_apply(client, metered, run_queue, other):
    sink, _account, p = metered
    accept(client, p, to="late@example.com")
    Suppression.objects.create(account=other, email="late@example.com", cause="hard_bounce")
    assert run_queue() == 1
    assert len(sink.messages) == 1


def test_a_claimed_batch_is_checked_in_one_query(client, metered, run_queue):
    """The check happens when the batch is claimed, once for all its rows (not per row)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sink, account, p = metered
    rows = [accept(client, p, to=f"r{i}@example.com") for i in range(5)]
    Suppression.objects.create(account=account, email="r3@example.com", cause="manual")

    with CaptureQueriesContext(connection) as seen:
        assert run_queue() >= 1
    assert sum(reads("hub_suppression", q["sql"]) for q in seen.captured_queries) == 1
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == ["r0@example.com", "r1@example.com",
                                                            "r2@example.com", "r4@example.com"]
    rows[3].refresh_from_db()
    assert rows[3].status == SendLog.Status.FAILED and rows[3].failure_type == FailureType.BLACKLIST


def reads(table: str, sql: str) -> bool:
    """Does this statement name the table (quoted as SQLite or as MariaDB quotes it)?"""
    return re.search(rf"[`\"]{table}[`\"]", sql) is not None
