"""The back office: endpoints added with a generated secret, SSRF refused in the form, the
event log with status/attempts/answer, the resend action, the attempts page, the nav."""

from __future__ import annotations

from django.utils import timezone

from hub import events
from hub.webhooks import outbox
from hub.webhooks.models import Attempt, Endpoint, Event

KINDS = ["sent", "failed"]


def test_add_endpoint_in_the_admin(su, account, settings):
    settings.HUB_WEBHOOK_ALLOW_NETWORKS = []
    form = {"account": account.pk, "url": "http://10.0.0.5/hook", "description": "", "event_kinds": KINDS,
            "enabled": "on", "new_secret": ""}
    refused = su.post("/admin/webhooks/endpoint/add/", form)
    assert refused.status_code == 200 and "private or local address" in refused.content.decode()
    assert Endpoint.objects.count() == 0
    r = su.post("/admin/webhooks/endpoint/add/", {**form, "url": "https://hooks.example.com/in"})
    assert r.status_code == 302, r.content.decode()[:3000]
    endpoint = Endpoint.objects.get()
    assert endpoint.kinds == "sent,failed" and endpoint.get_secret().startswith("whsec_")
    page = su.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.get_secret() in page
    # Saved again without a new secret: the secret stays.
    secret = endpoint.get_secret()
    r = su.post(f"/admin/webhooks/endpoint/{endpoint.pk}/change/", {**form, "url": "https://hooks.example.com/v2",
                                                                     "event_kinds": ["opened"]})
    assert r.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.kinds, endpoint.get_secret()) == ("https://hooks.example.com/v2", "opened", secret)


def test_event_log_resend_and_attempts(su, account, make_endpoint, receiver):
    endpoint = make_endpoint(account, receiver.url, kinds="sent")
    receiver.statuses = [503]
    events.emit(events.Event(kind=events.Kind.SENT, email="log@example.com", at=timezone.now(),
                             account_id=account.pk))
    outbox.deliver_due()
    event = Event.objects.get()
    listing = su.get("/admin/webhooks/event/").content.decode()
    assert "log@example.com" in listing and "503" in listing and "Waiting" in listing
    detail = su.get(f"/admin/webhooks/event/{event.pk}/change/").content.decode()
    assert "HTTP 503" in detail and "receiver error" in detail
    r = su.post("/admin/webhooks/event/", {"action": "resend", "_selected_action": [event.pk]})
    assert r.status_code == 302
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("pending", 0)
    assert "log@example.com" not in su.get("/admin/webhooks/attempt/").content.decode()
    assert su.get(f"/admin/webhooks/attempt/{Attempt.objects.get().pk}/change/").status_code == 200
    assert su.get("/admin/webhooks/endpoint/").status_code == 200
    nav = su.get("/admin/").content.decode()
    for link in ("/admin/webhooks/endpoint/", "/admin/webhooks/event/", "/admin/webhooks/attempt/"):
        assert link in nav
    assert endpoint.pk


def test_resend_needs_the_change_permission(staff_factory, account, make_endpoint):
    make_endpoint(account, "https://hooks.example.com/", kinds="sent")
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(), account_id=account.pk))
    event = Event.objects.get()
    Event.objects.filter(pk=event.pk).update(status="failed", attempts=10)
    viewer = staff_factory("webhooks.view_event")
    assert viewer.get("/admin/webhooks/event/").status_code == 200
    viewer.post("/admin/webhooks/event/", {"action": "resend", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.status == "failed"


def test_pages_in_chinese(superuser, account, make_endpoint):
    from django.test import Client

    make_endpoint(account, "https://hooks.example.com/", kinds="sent")
    zh = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    zh.force_login(superuser)
    page = zh.get("/admin/webhooks/endpoint/").content.decode()
    assert "Webhook 端点" in page and "Webhook 事件" in page and "Webhook 推送记录" in page
    form = zh.get("/admin/webhooks/endpoint/add/").content.decode()
    assert "留空则保留原密钥" in form
