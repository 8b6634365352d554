"""Connection reuse (hub.delivery.transport.pool): a worker keeps one SMTP session per server across
tasks, bounded by HUB_SMTP_REUSE_MAX / HUB_SMTP_REUSE_SECONDS, checks it with NOOP before
reuse, reconnects when the server went away, and opens a new session when the server's
settings change. Sessions are counted at the (scripted aiosmtpd) server: one EHLO each."""

from __future__ import annotations

import pytest

from hub.delivery import slots
from hub.delivery.outbox import deliver_batch
from hub.delivery.transport import pool
from hub.models import ConnectionSlot, DeliveryAttempt, SendLog
from hub.tests.test_retry import ScriptedHandler, accept_logins, attempts_of, queue_one, scripted_server_record


def deliver_each(app, n: int, **fields) -> list[SendLog]:
    """n messages, each in its own deliver_batch call (one task each, like the API's)."""
    rows = []
    for i in range(n):
        row = queue_one(app, subject=f"m{i}", **fields)
        deliver_batch([row.id])
        row.refresh_from_db()
        assert row.status == SendLog.Status.SENT, row.error
        rows.append(row)
    return rows


def test_one_connection_for_consecutive_tasks(scripted_smtp, make_server, make_app):
    smtp = scripted_smtp()
    app = make_app(scripted_server_record(make_server, smtp)).app

    deliver_each(app, 5)

    assert len(smtp.messages) == 5
    assert smtp.handler.sessions == 1
    # Used again within HUB_SMTP_NOOP_AFTER_IDLE_SECONDS: no NOOP round trip per message.
    assert smtp.handler.noops == 0


def test_idle_connection_is_checked_with_noop_before_reuse(scripted_smtp, make_server, make_app, settings):
    settings.HUB_SMTP_NOOP_AFTER_IDLE_SECONDS = 0  # every reuse counts as after an idle spell
    smtp = scripted_smtp()
    app = make_app(scripted_server_record(make_server, smtp)).app

    deliver_each(app, 5)

    assert len(smtp.messages) == 5
    assert smtp.handler.sessions == 1
    assert smtp.handler.noops == 4


def test_one_connection_for_a_batch(scripted_smtp, make_server, make_app):
    smtp = scripted_smtp()
    app = make_app(scripted_server_record(make_server, smtp)).app
    rows = [queue_one(app, subject=f"m{i}") for i in range(5)]

    deliver_batch([r.id for r in rows])

    assert SendLog.objects.filter(status=SendLog.Status.SENT).count() == 5
    assert smtp.handler.sessions == 1
    assert len(smtp.messages) == 5


def test_reuse_max_bounds_the_uses_of_a_connection(scripted_smtp, make_server, make_app, settings, monkeypatch):
    settings.HUB_SMTP_REUSE_MAX = 2
    smtp = scripted_smtp()
    app = make_app(scripted_server_record(make_server, smtp)).app

    taken = []
    real_acquire = slots.acquire
    monkeypatch.setattr(slots, "acquire", lambda *a, **kw: taken.append(1) or real_acquire(*a, **kw))

    deliver_each(app, 5)

    assert len(smtp.messages) == 5
    assert smtp.handler.sessions == 3  # 2 + 2 + 1
    # The new connections took the worn-out one's connection slot: one slot, taken once and
    # still held (no release and take again, which let other workers' threads starve).
    assert len(taken) == 1
    (slot,) = ConnectionSlot.objects.all()
    assert slot.holder and slot.holder == next(iter(pool.sessions[app.servers.get().pk])).slot.holder


def test_reuse_seconds_bounds_the_age_of_a_connection(scripted_smtp, make_server, make_app, settings):
    settings.HUB_SMTP_REUSE_SECONDS = 0  # every session is too old by the next task
    smtp = scripted_smtp()
    app = make_app(scripted_server_record(make_server, smtp)).app

    deliver_each(app, 3)

    assert len(smtp.messages) == 3
    assert smtp.handler.sessions == 3


def test_each_server_has_its_own_connection(scripted_smtp, make_server, make_app):
    one, two = scripted_smtp(), scripted_smtp()
    app_one = make_app(scripted_server_record(make_server, one, name="one"), name="one").app
    app_two = make_app(scripted_server_record(make_server, two, name="two"), name="two").app

    for _ in range(3):
        deliver_each(app_one, 1)
        deliver_each(app_two, 1)

    assert (len(one.messages), len(two.messages)) == (3, 3)
    assert (one.handler.sessions, two.handler.sessions) == (1, 1)


@pytest.mark.parametrize("noop_after_idle", [0, 60], ids=["noop-check", "dead-at-mail-from"])
def test_server_restarted_between_sends_is_reconnected(scripted_smtp, make_server, make_app, settings,
                                                       noop_after_idle):
    # Found either by the NOOP check, or (no NOOP while recently used) when MAIL FROM fails on
    # the dead connection: nothing was sent yet, so it reconnects and sends at once.
    settings.HUB_SMTP_NOOP_AFTER_IDLE_SECONDS = noop_after_idle
    smtp = scripted_smtp()
    server = scripted_server_record(make_server, smtp, timeout=2)
    app = make_app(server).app
    deliver_each(app, 1)
    assert smtp.handler.sessions == 1

    # Same port, new server process: the pooled connection is dead.
    smtp.stop()
    smtp.start()

    (row,) = deliver_each(app, 1)

    # Transparent: one attempt, sent, the server not marked as failing.
    assert attempts_of(row) == [(server.id, DeliveryAttempt.Result.SENT, 250)]
    assert row.attempts == 1
    assert smtp.handler.sessions == 2
    assert len(smtp.messages) == 2
    server.refresh_from_db()
    assert server.failing_since is None


def test_changed_password_opens_a_new_connection(scripted_smtp, make_server, make_app):
    seen: list[tuple[str, str]] = []
    smtp = scripted_smtp(authenticator=accept_logins("relay", {"old-pass", "new-pass"}, seen), auth_required=True)
    server = scripted_server_record(make_server, smtp, username="relay", password="old-pass")
    app = make_app(server).app
    deliver_each(app, 2)
    assert seen == [("relay", "old-pass")]

    server.set_password("new-pass")
    server.save()
    deliver_each(app, 2)

    assert seen == [("relay", "old-pass"), ("relay", "new-pass")]
    assert smtp.handler.sessions == 2
    assert len(smtp.messages) == 4


def test_changed_port_opens_a_new_connection(scripted_smtp, make_server, make_app):
    old, new = scripted_smtp(), scripted_smtp()
    server = scripted_server_record(make_server, old)
    app = make_app(server).app
    deliver_each(app, 1)

    server.port = new.port
    server.save()
    deliver_each(app, 2)

    assert (len(old.messages), len(new.messages)) == (1, 2)
    assert (old.handler.sessions, new.handler.sessions) == (1, 1)
    # The pool holds only the new session.
    assert len(pool.sessions) == 1


def test_connection_lost_mid_transaction_is_not_reused(scripted_smtp, make_server, make_app, settings):
    # A server that stalls past the timeout leaves the session unusable: the next message
    # gets a fresh connection instead of a half-finished transaction.
    settings.HUB_RETRY_SCHEDULE = [60]
    smtp = scripted_smtp(ScriptedHandler(stall_seconds=30))
    server = scripted_server_record(make_server, smtp, timeout=1)
    app = make_app(server).app
    stalled = queue_one(app)
    deliver_batch([stalled.id])
    stalled.refresh_from_db()
    assert stalled.status == SendLog.Status.RETRYING
    assert server.id not in pool.sessions

    smtp.handler.stall_seconds = 0
    (_row,) = deliver_each(app, 1)
    assert smtp.handler.sessions == 2
    assert len(smtp.messages) == 1
