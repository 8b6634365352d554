"""Quota and service period on the way a message travels: refused at the send API with
nothing written, taken once per accepted message (idempotent replays take nothing), given
back when a failure after the reservation rolls the row back, and given back exactly once
when delivery ends the message as failed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from api.tests.test_send_api import good_fields, post
from hub import queries, quota
from hub.delivery import attempt
from hub.delivery.transport import Outcome
from hub.models import Account, IdempotencyKey, QuotaChange, SendLog
from hub.sending import SendRequest, accept
from hub.tests.test_retry import ScriptedHandler, make_due, queue_one, scripted_server_record

T = Account.QuotaType


def metered(**fields) -> Account:
    values = {"name": "客户甲", "quota_type": T.TOTAL, "quota_total": 10, "quota_available": 10}
    values.update(fields)
    return Account.objects.create(**values)


def left(a: Account) -> int:
    return Account.objects.get(pk=a.pk).quota_available


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    server = make_server(smtp_sink, from_email="hub@example.com")
    return smtp_sink, server, make_app


def assert_nothing_written(sink, a: Account, available: int) -> None:
    assert SendLog.objects.count() == 0
    assert OrmQ.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0
    assert sink.messages == []
    assert left(a) == available
    assert QuotaChange.objects.count() == 0


# --- the send API --------------------------------------------------------------------------------

def test_a_send_takes_one_unit_per_recipient(client, hub, run_queue):
    _sink, server, make_app = hub
    a = metered()
    p = make_app(server, account=a)
    r = post(client, "/api.php", good_fields(p.creds, to="a@example.com, b@example.com, A@example.com",
                                             cc="c@example.com", bcc="d@example.com"))
    assert r.status_code == 200 and r.json()["code"] == 0, r.content
    row = SendLog.objects.get()
    assert row.quota_charged == 4  # a, b, c, d: one per envelope recipient (A@ is a@ again)
    assert left(a) == 6
    run_queue()
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT and left(a) == 6  # delivery takes nothing more


def test_exhausted_quota_is_refused_and_nothing_is_written(client, hub):
    sink, server, make_app = hub
    a = metered(quota_available=1)
    p = make_app(server, account=a)
    r = post(client, "/api.php", good_fields(p.creds, to="a@example.com, b@example.com"))
    assert r.status_code == 403
    body = r.json()
    assert (body["code"], body["error"], body["msg"]) == (-1, "quota_exhausted", "发送额度不足")
    assert_nothing_written(sink, a, 1)


@pytest.mark.parametrize("fields,error", [
    ({"enabled": False}, "account_disabled"),
    ({"service_status": Account.ServiceStatus.DISABLED}, "service_disabled"),
    ({"service_start": 1}, "service_not_started"),
    ({"service_end": -1}, "service_expired"),
])
@pytest.mark.parametrize("quota_type", [T.TOTAL, T.UNLIMITED])
@pytest.mark.parametrize("url", ["/api.php", "/api/v1/send"])
def test_an_account_out_of_service_is_refused_and_nothing_is_written(client, hub, fields, error, quota_type, url):
    sink, server, make_app = hub
    fields = {k: (quota.today() + timedelta(days=v) if k in ("service_start", "service_end") else v)
              for k, v in fields.items()}
    a = metered(quota_type=quota_type, **fields)
    p = make_app(server, account=a)
    r = post(client, url, good_fields(p.creds, action="send" if url == "/api.php" else None))
    assert r.status_code == 403, r.content
    assert r.json()["error"] == error
    assert_nothing_written(sink, a, 10)


def test_an_idempotent_replay_takes_nothing(client, hub):
    _sink, server, make_app = hub
    a = metered()
    p = make_app(server, account=a)
    fields = good_fields(p.creds, to="a@example.com, b@example.com")
    first = post(client, "/api.php", fields, HTTP_IDEMPOTENCY_KEY="order-1")
    again = post(client, "/api.php", fields, HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert SendLog.objects.count() == 1 and left(a) == 8


def test_a_failure_after_the_reservation_gives_the_quota_back(hub, monkeypatch):
    sink, server, make_app = hub
    a = metered()
    app = queries.app(make_app(server, account=a).app.pk)

    def broken(self):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(queries.Insert, "run", broken)
    with pytest.raises(RuntimeError):
        accept(app, SendRequest(to="a@example.com", subject="s", message="m"))
    assert_nothing_written(sink, a, 10)


def test_the_default_account_sends_as_before_without_touching_the_account(hub):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _sink, server, make_app = hub
    app = queries.app(make_app(server).app.pk)
    # The account's terms came with the app (queries.app): an unlimited account costs the
    # send no statement, and the row is still one autocommit INSERT (no transaction).
    with CaptureQueriesContext(connection) as captured:
        row = accept(app, SendRequest(to="a@example.com", subject="s", message="m"))
    sqls = [q["sql"] for q in captured.captured_queries]
    assert row.quota_charged == 0
    assert not any("hub_account" in sql for sql in sqls), sqls
    assert sum(sql.startswith(f"INSERT INTO {connection.ops.quote_name('hub_sendlog')}") for sql in sqls) == 1
    assert Account.default().quota_available == 0


def test_a_daily_account_is_refused_for_the_rest_of_the_day(client, hub):
    _sink, server, make_app = hub
    a = metered(quota_type=T.DAILY, quota_total=2, quota_available=0, quota_day=quota.today() - timedelta(days=1))
    p = make_app(server, account=a)
    assert post(client, "/api.php", good_fields(p.creds, to="a@example.com, b@example.com")).status_code == 200
    r = post(client, "/api.php", good_fields(p.creds, to="c@example.com"))
    assert (r.status_code, r.json()["error"]) == (403, "quota_exhausted")
    assert SendLog.objects.count() == 1 and left(a) == 0


# --- delivery outcomes ------------------------------------------------------------------------------

def test_a_permanent_failure_gives_the_quota_back_exactly_once(scripted_smtp, make_server, make_app, run_queue,
                                                                settings):
    settings.HUB_RETRY_SCHEDULE = [0, 0, 0]
    smtp = scripted_smtp(ScriptedHandler(data_replies=["550 5.7.1 Message refused by local policy"]))
    a = metered()
    row = queue_one(make_app(scripted_server_record(make_server, smtp), account=a).app,
                    to="a@example.com, b@example.com")
    assert left(a) == 8
    assert run_queue() == 1
    row.refresh_from_db()
    assert row.status == SendLog.Status.FAILED and row.quota_charged == 2
    assert left(a) == 10
    # A late second outcome for the same claim (a worker that ran past its claim) records
    # nothing and so gives nothing back again.
    row.status = SendLog.Status.SENDING
    attempt._finish(row, Outcome(SendLog.Status.FAILED, 550, "again", "again"), None, [], 0.0)
    assert SendLog.objects.get(pk=row.pk).smtp_reply != "again"
    assert left(a) == 10


def test_a_temporary_failure_then_success_takes_the_quota_once(scripted_smtp, make_server, make_app, run_queue,
                                                                 settings):
    settings.HUB_RETRY_SCHEDULE = [60, 300]
    smtp = scripted_smtp(ScriptedHandler(data_replies=["451 4.3.0 try later"]))
    a = metered()
    row = queue_one(make_app(scripted_server_record(make_server, smtp), account=a).app)
    assert run_queue() == 1
    row.refresh_from_db()
    assert row.status == SendLog.Status.RETRYING and left(a) == 9
    make_due(row)
    from hub.sweeper import sweep

    sweep()
    assert run_queue() >= 1
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT and left(a) == 9


def test_a_crashed_delivery_that_gives_up_refunds_once(make_server, make_app, settings):
    settings.HUB_RETRY_SCHEDULE = []  # no retry left: the crash ends the message as failed
    a = metered()
    row = queue_one(make_app(make_server(), account=a).app)
    SendLog.objects.filter(pk=row.pk).update(status=SendLog.Status.SENDING, claim_token="t1",
                                             claimed_at=timezone.now())
    row = SendLog.objects.get(pk=row.pk)
    assert left(a) == 9
    attempt.abandon(row)
    assert SendLog.objects.get(pk=row.pk).status == SendLog.Status.FAILED and left(a) == 10
    attempt.abandon(row)  # the claim is gone: nothing recorded, nothing given back
    assert left(a) == 10


def test_a_daily_refund_after_the_day_gives_nothing_back(make_server, make_app):
    today = quota.today()
    a = metered(quota_type=T.DAILY, quota_total=5, quota_available=5, quota_day=today)
    row = queue_one(make_app(make_server(), account=a).app)
    assert left(a) == 4
    assert quota.refund_message(row.app_id, row.quota_charged, row.created_at - timedelta(days=1)) is False
    assert left(a) == 4
    assert quota.refund_message(row.app_id, row.quota_charged, row.created_at) is True
    assert left(a) == 5
