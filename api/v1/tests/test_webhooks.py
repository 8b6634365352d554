"""Native API: webhooks. CRUD, the delivery log and resend; every refusal writes nothing;
another account's webhook and event ids are "not found" on every endpoint; a manager acts
for its sub-account with customer_id."""

from __future__ import annotations

import pytest
from django.utils import timezone

from hub import events
from hub.webhooks import outbox, services, subscriptions
from hub.webhooks.models import Attempt, Endpoint, Event

J = {"content_type": "application/json"}


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.HUB_WEBHOOK_ALLOW_NETWORKS = []
    subscriptions.invalidate()
    yield
    subscriptions.invalidate()


def state() -> tuple:
    """Everything a webhook call could change."""
    return (list(Endpoint.objects.order_by("id").values_list("id", "url", "kinds", "enabled", "description",
                                                                "secret_encrypted")),
            list(Event.objects.order_by("id").values_list("id", "status", "attempts", "next_attempt_at")),
            Attempt.objects.count())


def test_create_list_edit_rotate_delete(client, tenant_a):
    h = tenant_a.headers
    r = client.post("/api/v1/webhooks", {"url": "https://hooks.example.com/in", "events": ["sent", "failed"],
                                         "description": "CRM"}, **J, **h)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["events"] == ["sent", "failed"] and body["enabled"] is True and body["secret"].startswith("whsec_")
    endpoint = Endpoint.objects.get(pk=body["id"])
    assert endpoint.account == tenant_a.account and endpoint.get_secret() == body["secret"]
    assert body["secret"] not in endpoint.secret_encrypted  # encrypted at rest
    listed = client.get("/api/v1/webhooks", **h).json()
    assert [w["id"] for w in listed] == [body["id"]] and "secret" not in listed[0]
    assert "secret" not in client.get(f"/api/v1/webhooks/{body['id']}", **h).json()
    default = client.post("/api/v1/webhooks", {"url": "https://b.example.com/"}, **J, **h).json()
    assert default["events"] == ["sent", "failed", "bounced", "complained", "opened", "clicked", "unsubscribed"]

    patched = client.patch(f"/api/v1/webhooks/{body['id']}", {"events": ["opened"], "enabled": False}, **J, **h)
    assert patched.status_code == 200 and patched.json()["events"] == ["opened"]
    assert patched.json()["enabled"] is False
    rotated = client.post(f"/api/v1/webhooks/{body['id']}/secret", {"secret": "my-own-secret-1234567"}, **J, **h)
    assert rotated.json()["secret"] == "my-own-secret-1234567"
    assert Endpoint.objects.get(pk=body["id"]).get_secret() == "my-own-secret-1234567"
    assert client.delete(f"/api/v1/webhooks/{body['id']}", **h).status_code == 204
    assert not Endpoint.objects.filter(pk=body["id"]).exists()


def test_log_and_resend(client, tenant_a, settings):
    settings.HUB_WEBHOOK_ALLOW_NETWORKS = ["127.0.0.0/8"]
    from conftest import free_port

    created = services.create_endpoint(tenant_a.account, f"http://127.0.0.1:{free_port()}/", ["sent"])
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(),
                             account_id=tenant_a.account.pk, data={"smtp_code": 250}))
    outbox.deliver_due()  # nobody listens: a failed attempt
    h = tenant_a.headers
    log = client.get(f"/api/v1/webhooks/{created.endpoint.pk}/events", **h).json()
    assert len(log) == 1 and log[0]["type"] == "sent" and log[0]["status"] == "pending" and log[0]["attempts"] == 1
    assert log[0]["last_attempt"]["ok"] is False and log[0]["data"] == {"smtp_code": 250}
    assert client.get(f"/api/v1/webhooks/{created.endpoint.pk}/events?status=delivered", **h).json() == []
    attempts = client.get(f"/api/v1/webhooks/{created.endpoint.pk}/attempts", **h).json()
    assert len(attempts) == 1 and attempts[0]["event_count"] == 1
    r = client.post(f"/api/v1/webhooks/{created.endpoint.pk}/resend", {"event_ids": [log[0]["id"]]}, **J, **h)
    assert r.status_code == 200 and r.json() == {"queued": 1}
    assert Event.objects.get().attempts == 0


def test_refusals_write_nothing(client, tenant_a, tenant_b, settings):
    settings.HUB_WEBHOOK_MAX_ENDPOINTS = 2
    own = services.create_endpoint(tenant_a.account, "https://a.example.com/", ["sent"]).endpoint
    theirs = services.create_endpoint(tenant_b.account, "https://b.example.com/", ["sent"]).endpoint
    for account in (tenant_a.account, tenant_b.account):
        events.emit(events.Event(kind=events.Kind.SENT, email="x@example.com", at=timezone.now(),
                                 account_id=account.pk))
    own_event = Event.objects.get(endpoint=own)
    their_event = Event.objects.get(endpoint=theirs)
    before = state()
    h = tenant_a.headers
    cases = [
        # Another account's webhook, on every endpoint.
        (client.get(f"/api/v1/webhooks/{theirs.pk}", **h), 404, "not_found"),
        (client.patch(f"/api/v1/webhooks/{theirs.pk}", {"enabled": False}, **J, **h), 404, "not_found"),
        (client.delete(f"/api/v1/webhooks/{theirs.pk}", **h), 404, "not_found"),
        (client.post(f"/api/v1/webhooks/{theirs.pk}/secret", {}, **J, **h), 404, "not_found"),
        (client.get(f"/api/v1/webhooks/{theirs.pk}/events", **h), 404, "not_found"),
        (client.get(f"/api/v1/webhooks/{theirs.pk}/attempts", **h), 404, "not_found"),
        (client.post(f"/api/v1/webhooks/{theirs.pk}/resend", {"event_ids": [their_event.pk]}, **J, **h), 404,
         "not_found"),
        # Another account's event through one's own webhook: all or nothing.
        (client.post(f"/api/v1/webhooks/{own.pk}/resend", {"event_ids": [own_event.pk, their_event.pk]}, **J, **h),
         404, "not_found"),
        (client.post(f"/api/v1/webhooks/{own.pk}/resend", {"event_ids": []}, **J, **h), 400, "invalid"),
        (client.post(f"/api/v1/webhooks/{own.pk}/resend", {"event_ids": list(range(1, 502))}, **J, **h), 400,
         "invalid"),
        (client.get("/api/v1/webhooks/999999", **h), 404, "not_found"),
        (client.get(f"/api/v1/webhooks?customer_id={tenant_b.account.pk}", **h), 403, "forbidden"),
        # Bad input.
        (client.post("/api/v1/webhooks", {"url": "http://169.254.169.254/latest/"}, **J, **h), 400, "url_forbidden"),
        (client.post("/api/v1/webhooks", {"url": "http://localhost:8000/"}, **J, **h), 400, "url_forbidden"),
        (client.post("/api/v1/webhooks", {"url": "ftp://a.example.com/"}, **J, **h), 400, "url_error"),
        (client.post("/api/v1/webhooks", {"url": "https://u:p@a.example.com/"}, **J, **h), 400, "url_error"),
        (client.post("/api/v1/webhooks", {"url": "https://a.example.com/" + "x" * 2000}, **J, **h), 400, "invalid"),
        (client.post("/api/v1/webhooks", {"url": "https://a.example.com/", "events": ["deleted"]}, **J, **h), 400,
         "invalid"),
        (client.post("/api/v1/webhooks", {"url": "https://a.example.com/", "events": []}, **J, **h), 400, "invalid"),
        (client.post("/api/v1/webhooks", {"url": "https://a.example.com/", "secret": "short"}, **J, **h), 400,
         "secret_error"),
        (client.post("/api/v1/webhooks", {"events": ["sent"]}, **J, **h), 400, "invalid"),
        (client.patch(f"/api/v1/webhooks/{own.pk}", {"url": "http://10.0.0.1/"}, **J, **h), 400, "url_forbidden"),
        (client.post(f"/api/v1/webhooks/{own.pk}/secret", {"secret": "é" * 20}, **J, **h), 400, "secret_error"),
        (client.get(f"/api/v1/webhooks/{own.pk}/events?status=lost", **h), 400, "invalid"),
        (client.post("/api/v1/webhooks", "{not json", **J, **h), 400, "parse_error"),
        (client.get("/api/v1/webhooks"), 401, "not_authenticated"),
    ]
    for i, (response, status, code) in enumerate(cases):
        assert response.status_code == status, (i, response.content)
        assert response.json()["error"]["code"] == code, (i, response.content)
    assert state() == before
    # The limit: one more is allowed (2), the next refused.
    assert client.post("/api/v1/webhooks", {"url": "https://c.example.com/"}, **J, **h).status_code == 201
    after = state()
    full = client.post("/api/v1/webhooks", {"url": "https://d.example.com/"}, **J, **h)
    assert full.status_code == 409 and full.json()["error"]["code"] == "too_many"
    assert state() == after


def test_a_manager_acts_for_its_sub_account(client, make_tenant):
    boss = make_tenant("boss", is_manager=True)
    sub = make_tenant("sub")
    sub.account.parent = boss.account
    sub.account.save()
    r = client.post(f"/api/v1/webhooks?customer_id={sub.account.pk}", {"url": "https://s.example.com/"}, **J,
                    **boss.headers)
    assert r.status_code == 201 and r.json()["customer_id"] == sub.account.pk
    assert client.get("/api/v1/webhooks", **boss.headers).json() == []
    assert len(client.get(f"/api/v1/webhooks?customer_id={sub.account.pk}", **boss.headers).json()) == 1
