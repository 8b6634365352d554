"""action=status: an app looks up one of its own messages by the id the send returned."""

from __future__ import annotations

import datetime

import pytest
from django_q.models import OrmQ

from api.tests.test_send_api import good_fields, post
from hub.models import SendLog

STATUS_FIELDS = {"id", "status", "attempts", "smtp_code", "smtp_reply", "error", "refused_recipients",
                 "message_id", "created_at", "sent_at", "next_attempt_at"}


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    return smtp_sink, make_app(make_server(smtp_sink))


def send(client, p) -> int:
    r = post(client, "/api.php", good_fields(p.creds))
    assert r.json()["code"] == 0, r.json()
    return r.json()["id"]


def status(client, creds: dict, log_id, url: str = "/api.php", fmt: str = "form"):
    fields = {"action": "status", **creds}
    if log_id is not None:
        fields["id"] = log_id
    return post(client, url, fields, fmt)


def parse_ts(value: str) -> datetime.datetime:
    ts = datetime.datetime.fromisoformat(value)
    assert ts.tzinfo is not None, value  # timestamps are unambiguous
    return ts


@pytest.mark.parametrize("url", ["/api.php", "/api/v1/send"])
@pytest.mark.parametrize("fmt", ["form", "multipart", "json"])
def test_status_before_and_after_delivery(client, hub, run_queue, url, fmt):
    sink, p = hub
    log_id = send(client, p)
    row = SendLog.objects.get(pk=log_id)

    r = status(client, p.creds, str(log_id), url, fmt)
    assert r.status_code == 200, r.content
    body = r.json()
    assert set(body) == {"code", "msg"} | STATUS_FIELDS
    assert body["code"] == 0
    assert (body["id"], body["status"], body["attempts"]) == (log_id, "queued", 0)
    assert (body["smtp_code"], body["smtp_reply"], body["error"]) == (None, "", "")
    assert body["refused_recipients"] == {}
    assert body["message_id"] == row.message_id
    assert parse_ts(body["created_at"]) == row.created_at
    assert body["sent_at"] is None and body["next_attempt_at"] is None
    # Looking does not change or queue anything.
    assert OrmQ.objects.count() == 1 and SendLog.objects.get().status == "queued"

    assert run_queue() == 1
    assert len(sink.messages) == 1
    body = status(client, p.creds, log_id, url, fmt).json()
    assert (body["code"], body["status"], body["attempts"], body["smtp_code"]) == (0, "sent", 1, 250)
    assert "queued as TEST" in body["smtp_reply"]  # the sink's own words
    assert body["error"] == ""
    assert parse_ts(body["sent_at"]) >= parse_ts(body["created_at"])
    assert body["next_attempt_at"] is None
    assert len(sink.messages) == 1  # the look-up sent nothing


def test_status_of_a_failed_message_shows_the_refusal(client, smtp_sink_factory, make_server, make_app, run_queue):
    sink = smtp_sink_factory(refuse={"gone@example.com": "550 5.1.1 User unknown"})
    p = make_app(make_server(sink))
    r = post(client, "/api.php", good_fields(p.creds, to="gone@example.com"))
    log_id = r.json()["id"]
    assert run_queue() == 1
    body = status(client, p.creds, log_id).json()
    assert (body["code"], body["status"], body["smtp_code"]) == (0, "failed", 550)
    assert "User unknown" in body["smtp_reply"]
    assert body["error"]
    assert body["refused_recipients"] == {"gone@example.com": [550, "5.1.1 User unknown"]}
    assert body["sent_at"] is None
    assert sink.messages == []


def test_another_apps_message_is_not_found(client, smtp_sink, make_server, make_app):
    server = make_server(smtp_sink)
    owner, snoop = make_app(server, name="甲"), make_app(server, name="乙")
    log_id = send(client, owner)
    theirs = status(client, snoop.creds, log_id)
    missing = status(client, snoop.creds, log_id + 1000)
    # Someone else's message and a message that does not exist answer the same.
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content
    assert theirs.json() == {"code": -1, "msg": "邮件不存在", "error": "not_found"}
    assert status(client, owner.creds, log_id).json()["code"] == 0


@pytest.mark.parametrize("log_id,http_status,error", [
    (None, 400, "id_required"),
    ("", 400, "id_required"),
    ("   ", 400, "id_required"),
    ("abc", 404, "not_found"),
    ("-1", 404, "not_found"),
    ("1.5", 404, "not_found"),
    ("1e3", 404, "not_found"),
    ("0x10", 404, "not_found"),
    ("9" * 40, 404, "not_found"),
    ("1; DROP TABLE hub_sendlog", 404, "not_found"),
    ("0", 404, "not_found"),
])
def test_bad_ids(client, hub, log_id, http_status, error):
    _sink, p = hub
    send(client, p)
    r = status(client, p.creds, log_id)
    assert r.status_code == http_status
    body = r.json()
    assert (body["code"], body["error"]) == (-1, error)
    assert "status" not in body
    assert SendLog.objects.count() == 1 and OrmQ.objects.count() == 1


@pytest.mark.parametrize("fmt", ["json"])
@pytest.mark.parametrize("log_id,error", [({"id": 1}, "invalid_field"), (True, "invalid_field"), ([1], "invalid_field")])
def test_json_id_of_wrong_type(client, hub, fmt, log_id, error):
    _sink, p = hub
    send(client, p)
    r = status(client, p.creds, log_id, fmt=fmt)
    assert r.status_code == 400
    assert (r.json()["code"], r.json()["error"]) == (-1, error)


def test_json_numeric_id(client, hub):
    _sink, p = hub
    log_id = send(client, p)
    body = status(client, p.creds, log_id, fmt="json").json()
    assert (body["code"], body["id"]) == (0, log_id)


@pytest.mark.parametrize("creds,http_status,error", [
    ({"appsecret": "wrong"}, 401, "invalid_credentials"),
    ({"appid": "999999"}, 401, "invalid_credentials"),
    ({"appid": ""}, 400, "appid_required"),
    ({"appsecret": ""}, 400, "appsecret_required"),
])
def test_status_needs_valid_credentials(client, hub, creds, http_status, error):
    _sink, p = hub
    log_id = send(client, p)
    r = status(client, {**p.creds, **creds}, log_id)
    assert r.status_code == http_status
    assert r.json()["error"] == error
    assert "status" not in r.json()


def test_status_works_for_a_disabled_server(client, smtp_sink, make_server, make_app):
    """Looking up a message needs no SMTP server: an app whose server was switched off after
    sending can still ask what happened."""
    server = make_server(smtp_sink)
    p = make_app(server)
    log_id = send(client, p)
    server.enabled = False
    server.save()
    assert status(client, p.creds, log_id).json()["status"] == "queued"
