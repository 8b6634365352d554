"""hub.queries: the hot path's hand-built SQL must read and write exactly what the ORM does
(on SQLite and on MariaDB), since the API and the worker rely on it for every message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from hub import queries
from hub.models import App, DeliveryAttempt, DeliveryWakeup, SendLog, Suppression


def test_app_reads_every_field_like_the_orm(make_server, make_app):
    server = make_server()
    app = make_app(server, from_name="发件人", allowed_ips="10.0.0.0/8", rate_limit_per_minute=7).app
    App.objects.filter(pk=app.pk).update(enabled=False, previous_secret_expires_at=timezone.now())
    expected = App.objects.get(pk=app.pk)
    got = queries.app(app.pk)
    assert got is not None and got.pk == app.pk
    for field in App._meta.concrete_fields:
        assert getattr(got, field.attname) == getattr(expected, field.attname), field.name
    assert got.enabled is False  # a real boolean, not SQLite's 0
    assert queries.app(app.pk + 1000) is None


def test_app_servers_are_in_priority_order_with_enabled_flags(make_server, make_app):
    first = make_server(name="a", from_email="a@example.com")
    second = make_server(name="b", from_email="", username="user-b@example.com", enabled=False)
    app = make_app(second, first).app  # priority 0: second, 1: first
    assert queries.app_servers(app.pk) == [(False, "", "user-b@example.com"), (True, "a@example.com", "")]
    assert queries.app_servers(app.pk + 1) == []


def test_suppressed_matches_only_this_apps_accounts_listed_addresses(make_server, make_app, account, other):
    server = make_server()
    app, sibling = make_app(server, account=account).app, make_app(server, name="sibling", account=account).app
    foreign = make_app(server, name="other", account=other).app
    Suppression.objects.create(app=sibling, email="gone@example.com", reason="hard bounce")
    Suppression.objects.create(app=foreign, email="other@example.com", reason="hard bounce")
    Suppression.objects.create(account=account, email="unsub@example.com", cause="unsubscribe", bulk_only=True)
    asked = {"gone@example.com", "ok@example.com", "other@example.com", "unsub@example.com"}
    assert queries.suppressed(app.pk, asked) == ["gone@example.com"]
    # Campaign mail also stops at the campaign-only entries (unsubscribes).
    assert queries.suppressed(app.pk, asked, campaign=True) == ["gone@example.com", "unsub@example.com"]
    assert queries.suppressions(app.pk, asked) == {"gone@example.com": ("manual", False),
                                                   "unsub@example.com": ("unsubscribe", True)}
    assert queries.suppressed(app.pk, set()) == []


def test_wakeup_pending_since_compares_the_flag(db):
    now = timezone.now()
    DeliveryWakeup.objects.filter(pk=1).update(requested_at=now)
    assert queries.wakeup_pending_since(now - timedelta(seconds=5)) is True
    assert queries.wakeup_pending_since(now + timedelta(seconds=5)) is False
    DeliveryWakeup.objects.filter(pk=1).update(requested_at=None)
    assert queries.wakeup_pending_since(now - timedelta(days=1)) is False


def test_insert_stores_what_save_would(make_server, make_app):
    app = make_app(make_server()).app
    fields = {"app": app, "to": "张三 <a@example.com>", "subject": "主题", "html_body": "<p>正文</p>",
                  "from_email": "noreply@example.com", "message_id": "<x@example.com>",
                  "event": {"uid": "u1", "method": "REQUEST"}, "client_ip": "2001:db8::1"}
    row = SendLog(**fields)
    queries.Insert(row).run()
    assert row.pk and not row._state.adding
    via_orm = SendLog.objects.create(**fields)
    stored, reference = SendLog.objects.get(pk=row.pk), SendLog.objects.get(pk=via_orm.pk)
    for field in SendLog._meta.concrete_fields:
        if field.name not in ("id", "created_at", "updated_at"):
            assert getattr(stored, field.attname) == getattr(reference, field.attname), field.name
    assert stored.status == SendLog.Status.QUEUED and stored.refused_recipients == {}
    assert stored.updated_at is not None  # auto_now ran, as in save()


def test_update_changes_only_matching_rows_and_counts_them(make_server, make_app):
    server = make_server()
    app = make_app(server).app
    row = SendLog.objects.create(app=app, to="a@example.com", subject="s", html_body="b",
                                 status=SendLog.Status.SENDING, claim_token="mine")
    now = timezone.now()
    values = {"status": SendLog.Status.SENT, "smtp_server": server.pk, "smtp_code": 250,
              "refused_recipients": {"b@example.com": [550, "no"]}, "sent_at": now, "updated_at": now}
    assert queries.Update(SendLog, values, id=row.pk, status=SendLog.Status.SENDING, claim_token="theirs").run() == 0
    assert SendLog.objects.get(pk=row.pk).status == SendLog.Status.SENDING
    assert queries.Update(SendLog, values, id=row.pk, status=SendLog.Status.SENDING, claim_token="mine").run() == 1
    row.refresh_from_db()
    assert (row.status, row.smtp_server_id, row.smtp_code) == (SendLog.Status.SENT, server.pk, 250)
    assert row.refused_recipients == {"b@example.com": [550, "no"]} and row.sent_at == now


def test_insert_of_a_delivery_attempt(make_server, make_app):
    server = make_server()
    row = SendLog.objects.create(app=make_app(server).app, to="a@example.com", subject="s", html_body="b")
    started = timezone.now()
    attempt = DeliveryAttempt(log=row, server=server, result=DeliveryAttempt.Result.SENT, smtp_code=250,
                              smtp_reply="ok", started_at=started, duration_ms=12)
    queries.Insert(attempt).run()
    stored = DeliveryAttempt.objects.get(pk=attempt.pk)
    assert (stored.log_id, stored.server_id, stored.result, stored.smtp_code, stored.started_at,
            stored.duration_ms) == (row.pk, server.pk, DeliveryAttempt.Result.SENT, 250, started, 12)



@pytest.mark.parametrize("max_params", [30_000, 100])
def test_insert_many_gives_each_object_its_own_row(make_server, make_app, monkeypatch, max_params):
    """Multi-row INSERTs (several statements when the parameters run over the bound): each
    object gets the id of the row holding its values, and stores what save() would."""
    monkeypatch.setattr(queries, "_MAX_PARAMS", max_params)
    app = make_app(make_server()).app
    objs = [SendLog(app=app, to=f"user{i}@example.com", subject=f"主题 {i}", html_body="<p>x</p>",
                    refused_recipients={"a@example.com": [550, "no"]} if i == 3 else {}) for i in range(7)]
    queries.insert_many(objs)
    assert len({o.pk for o in objs}) == 7 and all(not o._state.adding for o in objs)
    stored = SendLog.objects.in_bulk([o.pk for o in objs])
    for i, obj in enumerate(objs):
        row = stored[obj.pk]
        assert (row.to, row.subject, row.status) == (f"user{i}@example.com", f"主题 {i}", SendLog.Status.QUEUED)
        assert row.refused_recipients == ({"a@example.com": [550, "no"]} if i == 3 else {})
        assert row.updated_at is not None
