"""POST /api/v1/send/batch: 500 messages in one request, all or nothing (hub.batch).
Every refusal checks the answer and that nothing was written (no row, no task, no quota
taken, no idempotency key)."""

from __future__ import annotations

import json

import pytest
from django_q.models import OrmQ

from hub.models import Account, IdempotencyKey, SendLog

URL = "/api/v1/send/batch"


def post(client, body, **extra):
    return client.post(URL, data=json.dumps(body), content_type="application/json", **extra)


def messages(n: int, **overrides) -> list[dict]:
    return [{"to": f"user{i}@example.com", "to_name": f"用户 {i}", "subject": f"批量 {i}",
             "message": f"<p>第 {i} 封</p>", **overrides} for i in range(n)]


def assert_nothing_written() -> None:
    assert SendLog.objects.count() == 0
    assert OrmQ.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    server = make_server(smtp_sink, from_email="hub@example.com")
    return smtp_sink, make_app(server, name="批量应用")


def test_500_messages_are_queued_in_order_then_delivered(client, hub, run_queue):
    sink, p = hub
    r = post(client, {**p.creds, "messages": messages(500)})
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["code"], body["count"]) == (0, 500)
    ids = [item["id"] for item in body["results"]]
    assert [item["index"] for item in body["results"]] == list(range(500))
    rows = SendLog.objects.in_bulk(ids)
    assert [rows[i].to for i in ids[:2]] == ['用户 0 <user0@example.com>', '用户 1 <user1@example.com>']
    assert {rows[i].status for i in ids} == {SendLog.Status.QUEUED}
    assert OrmQ.objects.count() == 1  # one drain asked for, not 500
    run_queue()
    assert len(sink.messages) == 500
    assert SendLog.objects.filter(status=SendLog.Status.SENT).count() == 500


@pytest.mark.parametrize("bad,error", [
    ({"to": "not an address"}, "invalid_address"),
    ({"subject": ""}, "subject_required"),
    ({"subject": "a\r\nBcc: x@example.com"}, "header_injection"),
    ({"attachments": []}, "invalid_field"),
    ({"sync": True}, "invalid_field"),
])
def test_one_bad_message_in_500_refuses_the_batch_and_writes_nothing(client, hub, bad, error):
    _sink, p = hub
    batch = messages(500)
    batch[321] = {**batch[321], **bad}
    r = post(client, {**p.creds, "messages": batch}, HTTP_IDEMPOTENCY_KEY="batch-1")
    assert r.status_code in (400, 413), r.content
    body = r.json()
    assert (body["code"], body["error"]) == (-1, "batch_refused")
    assert [(item["index"], item["error"]) for item in body["refused"]] == [(321, error)]
    assert_nothing_written()
    # The key was not used up: the corrected batch goes through under it.
    batch[321] = messages(500)[321]
    r = post(client, {**p.creds, "messages": batch}, HTTP_IDEMPOTENCY_KEY="batch-1")
    assert r.json()["count"] == 500


def test_a_suppressed_recipient_refuses_the_batch(client, hub):
    _sink, p = hub
    from hub.models import Suppression
    Suppression.objects.create(app=p.app, email="user7@example.com", reason="hard bounce")
    r = post(client, {**p.creds, "messages": messages(10)})
    assert r.status_code == 400
    assert [(i["index"], i["error"]) for i in r.json()["refused"]] == [(7, "recipient_suppressed")]
    assert_nothing_written()


@pytest.mark.parametrize("body,error,status", [
    ({"messages": []}, "invalid_field", 400),
    ({"messages": "x"}, "invalid_field", 400),
    ({}, "invalid_field", 400),
    ({"messages": [{"to": "a@example.com"}] * 501}, "too_large", 413),
    ({"message": {"subject": "s", "message": "m"}, "recipients": [{"to": "a@example.com"}], "messages": []},
     "invalid_field", 400),
])
def test_malformed_batches_are_refused_whole(client, hub, body, error, status):
    _sink, p = hub
    r = post(client, {**p.creds, **body})
    assert r.status_code == status, r.content
    assert r.json()["error"] == error
    assert_nothing_written()


def test_bad_credentials_and_non_json_are_refused(client, hub):
    _sink, p = hub
    r = post(client, {"appid": p.creds["appid"], "appsecret": "wrong", "messages": messages(2)})
    assert (r.status_code, r.json()["error"]) == (401, "invalid_credentials")
    r = client.post(URL, data={**p.creds, "to": "a@example.com"})
    assert (r.status_code, r.json()["error"]) == (400, "bad_request")
    assert_nothing_written()


def test_idempotency_key_covers_the_whole_batch(client, hub):
    _sink, p = hub
    first = post(client, {**p.creds, "messages": messages(3)}, HTTP_IDEMPOTENCY_KEY="k1").json()
    again = post(client, {**p.creds, "messages": messages(3)}, HTTP_IDEMPOTENCY_KEY="k1").json()
    assert again["idempotent_replay"] is True
    assert [i["id"] for i in again["results"]] == [i["id"] for i in first["results"]]
    assert SendLog.objects.count() == 3
    conflict = post(client, {**p.creds, "messages": messages(4)}, HTTP_IDEMPOTENCY_KEY="k1")
    assert (conflict.status_code, conflict.json()["error"]) == (409, "idempotency_conflict")
    assert SendLog.objects.count() == 3


def test_quota_is_reserved_for_the_whole_batch_or_nothing(client, hub):
    _sink, p = hub
    account = Account.objects.create(name="客户", quota_type=Account.QuotaType.TOTAL, quota_total=10,
                                     quota_available=5)
    p.app.account = account
    p.app.save()
    r = post(client, {**p.creds, "messages": messages(6)})
    assert (r.status_code, r.json()["error"]) == (403, "quota_exhausted")
    assert_nothing_written()
    assert Account.objects.get(pk=account.pk).quota_available == 5
    r = post(client, {**p.creds, "messages": messages(5)})
    assert r.json()["count"] == 5
    assert Account.objects.get(pk=account.pk).quota_available == 0
    assert sorted(SendLog.objects.values_list("quota_charged", flat=True)) == [1] * 5


def test_recipients_form_personalizes_each_message(client, hub, run_queue):
    sink, p = hub
    body = {**p.creds, "message": {"subject": "你好 {{name}}", "message": "<p>Hi {{name}}, code {{code}}</p>"},
            "recipients": [{"to": "a@example.com", "to_name": "A", "vars": {"name": "<b>安</b>", "code": 1}},
                           {"to": "b@example.com", "vars": {"name": "Bo"}}]}
    r = post(client, body)
    assert r.json()["count"] == 2, r.content
    first, second = SendLog.objects.order_by("id")
    assert first.subject == "你好 <b>安</b>" and first.html_body == "<p>Hi &lt;b&gt;安&lt;/b&gt;, code 1</p>"
    assert second.html_body == "<p>Hi Bo, code {{code}}</p>"  # an unknown name stays as it is
    run_queue()
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == ["a@example.com", "b@example.com"]
