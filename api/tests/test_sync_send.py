"""sync=1: the original system answered only after the SMTP server had spoken. The hub
delivers inside the request and answers with the outcome; the queued task then finds the
row finished and does nothing.

Transient failures (connection refused, 4xx) are deliberately not covered here: how they are
classified is being changed."""

from __future__ import annotations

import pytest
from django_q.models import OrmQ

from api.tests.test_send_api import good_fields, post
from hub.models import SendLog


@pytest.mark.parametrize("url", ["/api.php", "/api/v1/send"])
@pytest.mark.parametrize("fmt,sync", [("form", "1"), ("multipart", "1"), ("form", "true"), ("form", "yes"),
                                      ("json", "1"), ("json", 1)])
def test_sync_delivered(client, smtp_sink, make_server, make_app, run_queue, url, fmt, sync):
    p = make_app(make_server(smtp_sink, from_email="hub@example.com"))
    r = post(client, url, good_fields(p.creds, sync=sync, to_name="张三"), fmt)

    assert r.status_code == 200, r.content
    body = r.json()
    row = SendLog.objects.get()
    assert (body["code"], body["msg"], body["id"], body["status"]) == (0, "发送成功", row.id, "sent")
    assert body["smtp_code"] == 250 and "queued as TEST" in body["smtp_reply"]
    assert body["attempts"] == 1 and body["sent_at"] is not None
    # Already at the server when the answer comes back.
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0].rcpt_tos == ["alice@example.com"]
    assert smtp_sink.messages[0].message["Subject"] == "测试主题 Test"
    assert (row.status, row.smtp_code) == ("sent", 250)

    # The task queued with the row is still run by a worker, and must send nothing twice.
    assert OrmQ.objects.count() == 1
    assert run_queue() == 1
    assert len(smtp_sink.messages) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.smtp_code) == ("sent", 1, 250)


@pytest.mark.parametrize("fmt", ["form", "json"])
def test_sync_permanent_failure(client, smtp_sink_factory, make_server, make_app, run_queue, fmt):
    sink = smtp_sink_factory(refuse={"gone@example.com": "550 5.1.1 User unknown"})
    p = make_app(make_server(sink))
    r = post(client, "/api.php", good_fields(p.creds, to="gone@example.com", sync="1"), fmt)

    # HTTP 200: the request was handled; PHP clients read the failure from `code`.
    assert r.status_code == 200, r.content
    body = r.json()
    row = SendLog.objects.get()
    assert (body["code"], body["msg"], body["id"], body["status"]) == (-1, "发送失败", row.id, "failed")
    assert body["smtp_code"] == 550
    assert "5.1.1 User unknown" in body["smtp_reply"]
    assert body["refused_recipients"] == {"gone@example.com": [550, "5.1.1 User unknown"]}
    assert body["sent_at"] is None
    assert sink.messages == []
    assert (row.status, row.smtp_code, row.attempts) == ("failed", 550, 1)

    # The queued task is a no-op: the row stays failed, nothing is retried or sent.
    assert run_queue() == 1
    assert sink.messages == []
    row.refresh_from_db()
    assert (row.status, row.attempts, row.smtp_code) == ("failed", 1, 550)
    assert OrmQ.objects.count() == 0


def test_sync_partial_refusal_is_a_success(client, smtp_sink_factory, make_server, make_app, run_queue):
    """One refused recipient out of two: the message went out, and the refusal is reported."""
    sink = smtp_sink_factory(refuse={"gone@example.com": "550 5.1.1 User unknown"})
    p = make_app(make_server(sink))
    r = post(client, "/api.php", good_fields(p.creds, to="gone@example.com, alice@example.com", sync="1"))
    body = r.json()
    assert (r.status_code, body["code"], body["status"], body["smtp_code"]) == (200, 0, "sent", 250)
    assert body["refused_recipients"] == {"gone@example.com": [550, "5.1.1 User unknown"]}
    assert [m.rcpt_tos for m in sink.messages] == [["alice@example.com"]]
    assert run_queue() == 1
    assert len(sink.messages) == 1


@pytest.mark.parametrize("sync", ["0", "", "no", "false"])
def test_sync_off_only_queues(client, smtp_sink, make_server, make_app, run_queue, sync):
    p = make_app(make_server(smtp_sink))
    r = post(client, "/api.php", good_fields(p.creds, sync=sync))
    body = r.json()
    assert (r.status_code, body["code"], body["status"]) == (200, 0, "queued")
    assert smtp_sink.messages == []
    assert run_queue() == 1
    assert len(smtp_sink.messages) == 1


def test_sync_json_boolean(client, smtp_sink, make_server, make_app):
    """A JSON client writes a flag as `true`; refusing it as "参数无效" (invalid_field)
    would surprise every JSON integrator."""
    p = make_app(make_server(smtp_sink))
    r = post(client, "/api/v1/send", good_fields(p.creds, sync=True), "json")
    assert r.status_code == 200, r.content
    assert (r.json()["code"], r.json()["status"]) == (0, "sent")
    assert len(smtp_sink.messages) == 1


def test_bad_sync_value_refuses_before_writing(client, smtp_sink, make_server, make_app, run_queue):
    """A refusal must leave nothing behind. `sync` is read after the row and its task are
    committed, so a refusal over `sync` would tell the caller "refused" while the message
    is on its way anyway (and a retrying caller would send it twice)."""
    p = make_app(make_server(smtp_sink))
    r = post(client, "/api/v1/send", good_fields(p.creds, sync={"on": 1}), "json")
    assert r.status_code == 400
    assert (r.json()["code"], r.json()["error"]) == (-1, "invalid_field")
    assert SendLog.objects.count() == 0
    assert OrmQ.objects.count() == 0
    assert run_queue() == 0
    assert smtp_sink.messages == []
