"""Failover between an app's SMTP servers, in priority order: an unreachable primary, a
primary refusing our login, a primary that goes away mid-run; a recently failing primary is
tried last; disabled servers are never used. Every try is a DeliveryAttempt row."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from conftest import free_port
from hub.delivery.outbox import deliver_batch
from hub.delivery.policy import servers_in_order
from hub.models import DeliveryAttempt, SendLog
from hub.tests.test_retry import attempts_of, queue_one, scripted_server_record, scripted_smtp  # noqa: F401

SENT = DeliveryAttempt.Result.SENT
CONNECT_FAILED = DeliveryAttempt.Result.CONNECT_FAILED


def assert_carried_by(row: SendLog, server) -> None:
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT, row.error
    assert row.smtp_server_id == server.id
    assert row.from_email == server.sender
    # Failover happens inside one pass: it is one attempt of the message, not a retry.
    assert row.attempts == 1


def test_unreachable_primary_fails_over_to_the_secondary(smtp_sink_factory, make_server, make_app, run_queue):
    primary = make_server(None, name="primary", host="127.0.0.1", port=free_port(), from_email="a@example.com")
    sink = smtp_sink_factory()
    secondary = make_server(sink, name="secondary", from_email="b@example.com")
    row = queue_one(make_app(primary, secondary).app)

    assert run_queue() == 1

    assert_carried_by(row, secondary)
    assert attempts_of(row) == [(primary.id, CONNECT_FAILED, None), (secondary.id, SENT, 250)]
    first = DeliveryAttempt.objects.filter(log=row).order_by("id").first()
    assert "cannot connect" in first.error, first.error
    assert len(sink.messages) == 1
    assert sink.messages[0].mail_from == "b@example.com"
    assert sink.messages[0].message["X-SMTPHub-Log-ID"] == str(row.id)
    primary.refresh_from_db()
    secondary.refresh_from_db()
    assert primary.failing_since is not None and "cannot connect" in primary.last_error
    assert secondary.failing_since is None and secondary.last_success_at is not None


def test_primary_refusing_login_fails_over(smtp_sink_factory, make_server, make_app, run_queue):
    primary_sink = smtp_sink_factory("plain", username="relay", password="right")
    primary = make_server(primary_sink, name="primary", password="wrong")
    sink = smtp_sink_factory()
    secondary = make_server(sink, name="secondary")
    row = queue_one(make_app(primary, secondary).app)

    assert run_queue() == 1

    assert_carried_by(row, secondary)
    assert attempts_of(row) == [(primary.id, CONNECT_FAILED, 535), (secondary.id, SENT, 250)]
    assert primary_sink.messages == []
    assert len(sink.messages) == 1
    primary.refresh_from_db()
    assert primary.failing_since is not None and "535" in primary.last_error


def test_primary_stopped_mid_run(scripted_smtp, smtp_sink_factory, make_server, make_app, run_queue):
    primary_smtp = scripted_smtp()
    primary = scripted_server_record(make_server, primary_smtp, name="primary", timeout=2)
    sink = smtp_sink_factory()
    secondary = make_server(sink, name="secondary")
    app = make_app(primary, secondary).app

    first = queue_one(app, subject="first")
    assert run_queue() == 1
    assert_carried_by(first, primary)
    assert len(primary_smtp.messages) == 1

    # The primary goes away while the worker holds a pooled connection to it.
    primary_smtp.stop()
    second, third = queue_one(app, subject="second"), queue_one(app, subject="third")
    assert run_queue() == 1  # one drain delivers both

    assert_carried_by(second, secondary)
    assert attempts_of(second) == [(primary.id, CONNECT_FAILED, None), (secondary.id, SENT, 250)]
    # The third message no longer waits for the failing primary: it is tried last now.
    assert_carried_by(third, secondary)
    assert attempts_of(third) == [(secondary.id, SENT, 250)]
    assert [m.message["Subject"] for m in sink.messages] == ["second", "third"]
    assert len(primary_smtp.messages) == 1


def test_failing_primary_is_tried_last_within_the_cooldown(smtp_sink_factory, make_server, make_app, settings):
    settings.HUB_SERVER_COOLDOWN_SECONDS = 300
    primary_sink, secondary_sink = smtp_sink_factory(), smtp_sink_factory()
    primary = make_server(primary_sink, name="primary")
    secondary = make_server(secondary_sink, name="secondary")
    app = make_app(primary, secondary).app
    now = timezone.now()
    # The primary failed a minute ago (it is reachable again, but the hub does not know yet).
    type(primary).objects.filter(pk=primary.pk).update(failing_since=now - timedelta(minutes=5),
                                                       last_error_at=now - timedelta(minutes=1),
                                                       last_error="cannot connect")

    assert [s.id for s in servers_in_order(app.id)] == [secondary.id, primary.id]
    row = queue_one(app)
    deliver_batch([row.id])
    assert_carried_by(row, secondary)
    assert attempts_of(row) == [(secondary.id, SENT, 250)]
    assert primary_sink.messages == []

    # Once the cooldown has passed since its last error, the primary comes first again, and
    # a success clears its failing state.
    type(primary).objects.filter(pk=primary.pk).update(last_error_at=now - timedelta(seconds=301))
    assert [s.id for s in servers_in_order(app.id)] == [primary.id, secondary.id]
    row = queue_one(app)
    deliver_batch([row.id])
    assert_carried_by(row, primary)
    assert len(primary_sink.messages) == 1
    primary.refresh_from_db()
    assert primary.failing_since is None


def test_all_servers_failing_keeps_priority_order(make_server, make_app, settings):
    # Both failed recently: the primary still comes first among the failing ones.
    settings.HUB_SERVER_COOLDOWN_SECONDS = 300
    primary, secondary = make_server(name="primary"), make_server(name="secondary")
    app = make_app(primary, secondary).app
    now = timezone.now()
    type(primary).objects.update(failing_since=now, last_error_at=now, last_error="down")
    assert [s.id for s in servers_in_order(app.id)] == [primary.id, secondary.id]


def test_disabled_server_is_never_used(smtp_sink_factory, make_server, make_app, run_queue):
    disabled_sink, sink = smtp_sink_factory(), smtp_sink_factory()
    disabled = make_server(disabled_sink, name="primary but disabled", enabled=False)
    secondary = make_server(sink, name="secondary")
    app = make_app(disabled, secondary).app

    rows = [queue_one(app, subject=f"m{i}") for i in range(3)]
    assert run_queue() == 1  # one drain delivers all three

    for row in rows:
        assert_carried_by(row, secondary)
        assert attempts_of(row) == [(secondary.id, SENT, 250)]
    assert disabled_sink.messages == []
    assert len(sink.messages) == 3
    assert not DeliveryAttempt.objects.filter(server=disabled).exists()


def test_servers_disabled_after_acceptance_wait_without_sending(smtp_sink, make_server, make_app, run_queue,
                                                                settings):
    settings.HUB_RETRY_SCHEDULE = [60]
    server = make_server(smtp_sink)
    row = queue_one(make_app(server).app)
    type(server).objects.filter(pk=server.pk).update(enabled=False)

    assert run_queue() == 1

    row.refresh_from_db()
    # Not failed and not lost: it waits for an admin to enable a server again.
    assert row.status == SendLog.Status.RETRYING
    assert row.attempts == 0
    assert row.next_attempt_at is not None and row.next_attempt_at > timezone.now()
    assert "no enabled SMTP server" in row.error
    assert not DeliveryAttempt.objects.filter(log=row).exists()
    assert smtp_sink.messages == []
