"""Idempotency: an `Idempotency-Key` header or `request_id` field names a request. The same
key and payload from the same app within 24 h answers with the original message and writes
nothing (no SendLog, no task, nothing more at the SMTP server); the same key with another
payload is a 409; keys are per app; an expired key names a new message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from api.tests.test_send_api import good_fields, post
from hub.models import IdempotencyKey, SendLog


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    server = make_server(smtp_sink)
    return smtp_sink, server, make_app(server, name="idempotent")


def send(client, creds: dict, key: str | None = None, fmt: str = "form", url: str = "/api.php", **fields):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return post(client, url, good_fields(creds, **fields), fmt, **extra)


def accepted_id(r) -> int:
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["code"] == 0, body
    return body["id"]


def assert_written(logs: int, tasks: int) -> None:
    """`logs` SendLog rows and `tasks` drain tasks on the broker (one, however many rows wait)."""
    assert SendLog.objects.count() == logs
    assert OrmQ.objects.count() == tasks


@pytest.mark.parametrize("how", ["header", "request_id"])
def test_replay_returns_the_same_message_and_writes_nothing(client, hub, run_queue, how):
    sink, _server, p = hub

    def request():
        if how == "header":
            return send(client, p.creds, key="order-1001")
        return send(client, p.creds, request_id="order-1001")

    first = request()
    message_id = accepted_id(first)
    assert "idempotent_replay" not in first.json()
    assert_written(logs=1, tasks=1)
    assert IdempotencyKey.objects.get().key == "order-1001"

    replay = request()

    assert accepted_id(replay) == message_id
    assert replay.json()["idempotent_replay"] is True
    assert_written(logs=1, tasks=1)
    assert run_queue() == 1
    assert len(sink.messages) == 1

    # After delivery the replay still names the same message (now sent), and sends nothing.
    again = request()
    assert accepted_id(again) == message_id
    assert again.json()["status"] == "sent"
    assert_written(logs=1, tasks=0)
    assert run_queue() == 0
    assert len(sink.messages) == 1


def test_replay_across_urls_and_formats(client, hub):
    _sink, _server, p = hub
    message_id = accepted_id(send(client, p.creds, key="k", fmt="form"))
    # The same request sent as JSON to the v1 URL is the same request.
    r = send(client, p.creds, key="k", fmt="json", url="/api/v1/send")
    assert accepted_id(r) == message_id and r.json()["idempotent_replay"] is True
    r = send(client, p.creds, key="k", fmt="multipart", url="/api.php")
    assert accepted_id(r) == message_id
    assert_written(logs=1, tasks=1)


def test_header_and_request_id_name_the_same_key(client, hub):
    _sink, _server, p = hub
    message_id = accepted_id(send(client, p.creds, request_id="same"))
    assert accepted_id(send(client, p.creds, key="same")) == message_id
    assert_written(logs=1, tasks=1)


@pytest.mark.parametrize("change", [
    {"subject": "another subject"},
    {"to": "bob@example.com"},
    {"message": "<p>other</p>"},
    {"cc": "carol@example.com"},
    {"text": "plain part"},
])
def test_same_key_different_payload_is_a_conflict(client, hub, run_queue, change):
    sink, _server, p = hub
    message_id = accepted_id(send(client, p.creds, key="k-1"))

    r = send(client, p.creds, key="k-1", **change)

    assert r.status_code == 409
    body = r.json()
    assert (body["code"], body["error"], body["msg"]) == (-1, "idempotency_conflict",
                                                          "Idempotency-Key 已用于不同的请求")
    assert "id" not in body
    assert_written(logs=1, tasks=1)
    assert IdempotencyKey.objects.get().log_id == message_id
    assert run_queue() == 1
    assert len(sink.messages) == 1


def test_keys_are_per_app(client, hub, make_app):
    _sink, server, p = hub
    other = make_app(server, name="other")

    first = accepted_id(send(client, p.creds, key="shared-key"))
    second = send(client, other.creds, key="shared-key", subject="different, and that is fine")

    assert accepted_id(second) != first
    assert "idempotent_replay" not in second.json()
    assert_written(logs=2, tasks=1)
    assert SendLog.objects.get(pk=accepted_id(second)).app_id == other.app.id


def test_a_key_expires_after_24_hours(client, hub, run_queue):
    sink, _server, p = hub
    first = accepted_id(send(client, p.creds, key="daily"))
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))

    r = send(client, p.creds, key="daily")

    second = accepted_id(r)
    assert second != first and "idempotent_replay" not in r.json()
    assert_written(logs=2, tasks=1)
    assert IdempotencyKey.objects.get().log_id == second
    assert run_queue() == 1
    assert len(sink.messages) == 2


def test_a_key_just_inside_24_hours_still_replays(client, hub):
    _sink, _server, p = hub
    first = accepted_id(send(client, p.creds, key="daily"))
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    assert accepted_id(send(client, p.creds, key="daily")) == first
    assert_written(logs=1, tasks=1)


def test_without_a_key_every_request_is_new(client, hub):
    _sink, _server, p = hub
    assert accepted_id(send(client, p.creds)) != accepted_id(send(client, p.creds))
    assert_written(logs=2, tasks=1)
    assert not IdempotencyKey.objects.exists()


def test_longest_key_is_accepted(client, hub):
    _sink, _server, p = hub
    key = "k" * 255
    first = accepted_id(send(client, p.creds, key=key))
    assert accepted_id(send(client, p.creds, key=key)) == first


@pytest.mark.parametrize("key", ["k" * 256, "abc\r\nX-Evil: 1", "abc\ndef", "abc\x00"],
                         ids=["256-chars", "crlf", "lf", "nul"])
@pytest.mark.parametrize("how", ["header", "request_id"])
def test_bad_keys_are_refused(client, hub, run_queue, key, how):
    sink, _server, p = hub
    if how == "header":
        r = send(client, p.creds, key=key)
    else:
        r = send(client, p.creds, fmt="json", url="/api/v1/send", request_id=key)

    assert r.status_code == 400
    body = r.json()
    assert (body["code"], body["error"], body["msg"]) == (-1, "invalid_field", "参数无效")
    assert "Idempotency-Key" in body["detail"]
    assert_written(logs=0, tasks=0)
    assert not IdempotencyKey.objects.exists()
    assert run_queue() == 0
    assert sink.messages == []


def test_a_refused_request_does_not_take_the_key(client, hub):
    # A request refused for its content leaves the key free for the corrected request.
    _sink, _server, p = hub
    r = send(client, p.creds, key="retry-me", to="not-an-address")
    assert (r.status_code, r.json()["error"]) == (400, "invalid_address")
    assert_written(logs=0, tasks=0)

    accepted_id(send(client, p.creds, key="retry-me"))
    assert_written(logs=1, tasks=1)
