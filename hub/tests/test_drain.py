"""The outbox and its drain (hub.delivery.outbox: wake_workers, drain, claim_waiting): a
send commits its SendLog row and asks for one `hub.tasks.drain` task only when none is
pending (the DeliveryWakeup flag); a drain clears the flag, then delivers whatever waits,
a batch at a time, until nothing is left or its time is up. Real parts throughout: the
API, aiosmtpd servers on loopback, and the ORM broker's task rows (run by `run_queue`)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from django.utils import timezone
from django_q.models import OrmQ
from django_q.tasks import async_task

from api.tests.test_send_api import good_fields
from hub.delivery import outbox as delivery
from hub.models import DeliveryWakeup, SendLog
from hub.sweeper import sweep
from hub.delivery.outbox import wake_workers
from hub.tests.test_retry import queue_one, scripted_server_record, scripted_smtp  # noqa: F401

S = SendLog.Status


def tasks() -> list[str]:
    """The functions of the tasks waiting on the (ORM) broker."""
    return [q.func() for q in OrmQ.objects.order_by("id")]


def flag() -> DeliveryWakeup:
    return DeliveryWakeup.objects.get(pk=1)


def set_flag(requested_at) -> None:
    DeliveryWakeup.objects.update_or_create(pk=1, defaults={"requested_at": requested_at})


def forget_wakeup() -> None:
    """No drain pending: no task on the broker, the flag clear (as after a drain started)."""
    OrmQ.objects.all().delete()
    set_flag(None)


def statuses(rows: list[SendLog]) -> list[str]:
    return [SendLog.objects.get(pk=r.pk).status for r in rows]


# --- many sends, one task --------------------------------------------------------------------

def test_five_api_sends_make_one_task_that_delivers_them_all(client, scripted_smtp, make_server, make_app,
                                                           run_queue):
    smtp = scripted_smtp()
    p = make_app(scripted_server_record(make_server, smtp))

    ids = []
    for i in range(5):
        r = client.post("/api.php", good_fields(p.creds, to=f"reader{i}@example.com", subject=f"m{i}"))
        assert r.status_code == 200, r.content
        assert r.json()["code"] == 0, r.json()
        ids.append(r.json()["id"])

    rows = list(SendLog.objects.filter(pk__in=ids).order_by("id"))
    assert [row.status for row in rows] == [S.QUEUED] * 5
    assert tasks() == ["hub.tasks.drain"]  # one task, not five

    assert run_queue() == 1

    assert statuses(rows) == [S.SENT] * 5
    assert [m.message["Subject"] for m in smtp.messages] == [f"m{i}" for i in range(5)]
    assert smtp.handler.sessions == 1  # one SMTP connection for the whole drain
    assert OrmQ.objects.count() == 0
    assert flag().requested_at is None  # the drain took the request


# --- wake_workers ------------------------------------------------------------------------------

def test_wake_workers_queues_nothing_while_a_fresh_request_is_pending(db, settings):
    settings.HUB_WAKEUP_STALE_SECONDS = 10
    pending = timezone.now() - timedelta(seconds=9)
    OrmQ.objects.all().delete()
    set_flag(pending)

    assert wake_workers() is False
    assert wake_workers() is False

    assert OrmQ.objects.count() == 0
    assert flag().requested_at == pending  # untouched


def test_wake_workers_asks_again_when_the_request_is_stale(db, settings):
    # The task it stood for may have been lost (a Redis broker restarted): ask again, once.
    settings.HUB_WAKEUP_STALE_SECONDS = 10
    OrmQ.objects.all().delete()
    set_flag(timezone.now() - timedelta(seconds=11))
    before = timezone.now()

    assert wake_workers() is True
    assert wake_workers() is False  # the new request is fresh

    assert tasks() == ["hub.tasks.drain"]
    assert flag().requested_at >= before


def test_wake_workers_follows_the_stale_setting(db, settings):
    OrmQ.objects.all().delete()
    set_flag(timezone.now() - timedelta(seconds=5))
    settings.HUB_WAKEUP_STALE_SECONDS = 60
    assert wake_workers() is False
    settings.HUB_WAKEUP_STALE_SECONDS = 4
    assert wake_workers() is True
    assert tasks() == ["hub.tasks.drain"]


def test_wake_workers_queues_a_drain_when_none_was_asked_for(db):
    forget_wakeup()

    assert wake_workers() is True

    assert tasks() == ["hub.tasks.drain"]
    assert flag().requested_at is not None


def test_wake_workers_makes_the_flag_row_again_when_it_was_deleted(db):
    OrmQ.objects.all().delete()
    DeliveryWakeup.objects.all().delete()

    assert wake_workers() is True

    assert tasks() == ["hub.tasks.drain"]
    assert list(DeliveryWakeup.objects.values_list("pk", flat=True)) == [1]
    assert flag().requested_at is not None
    assert wake_workers() is False
    assert OrmQ.objects.count() == 1


# --- drain -------------------------------------------------------------------------------------

def test_drain_clears_the_flag_before_it_claims(smtp_sink, make_server, make_app, run_queue, monkeypatch):
    app = make_app(make_server(smtp_sink)).app
    first = queue_one(app, subject="first")
    assert flag().requested_at is not None
    OrmQ.objects.all().delete()  # this test runs the drain itself

    seen = []
    real_claim_waiting = delivery.claim_waiting

    def spy(limit: int):
        seen.append(flag().requested_at)
        return real_claim_waiting(limit)

    monkeypatch.setattr(delivery, "claim_waiting", spy)

    assert delivery.drain() == 1

    assert seen and seen[0] is None  # cleared before the first look at the outbox
    first.refresh_from_db()
    assert first.status == S.SENT, first.error
    assert OrmQ.objects.count() == 0  # it finished: no follow-up
    # The next send finds no drain pending: it queues a new one, which delivers it.
    second = queue_one(app, subject="second")
    assert tasks() == ["hub.tasks.drain"]
    assert run_queue() == 1
    second.refresh_from_db()
    assert second.status == S.SENT, second.error
    assert [m.message["Subject"] for m in smtp_sink.messages] == ["first", "second"]


def test_a_send_during_a_drain_gets_a_drain_and_is_sent_once(smtp_sink, make_server, make_app, run_queue,
                                                             monkeypatch):
    app = make_app(make_server(smtp_sink)).app
    first = queue_one(app, subject="first")
    real_deliver_claimed = delivery.deliver_claimed
    during: list[SendLog] = []

    def accept_while_delivering(rows, deadline):
        if not during:
            # The API commits a message while this drain is busy: the flag is clear (the
            # drain took it), so the send asks for another drain.
            during.append(queue_one(app, subject="during"))
            assert tasks() == ["hub.tasks.drain", "hub.tasks.drain"]  # this one, and a new one
        return real_deliver_claimed(rows, deadline)

    monkeypatch.setattr(delivery, "deliver_claimed", accept_while_delivering)

    assert run_queue() == 2  # the first drain, then the one the second send asked for

    assert statuses([first, *during]) == [S.SENT, S.SENT]
    # Whichever drain took it, it went out once.
    assert [m.message["Subject"] for m in smtp_sink.messages] == ["first", "during"]


def test_claim_waiting_takes_due_retries_first_then_queued_oldest_first(smtp_sink, make_server, make_app):
    """Due retries go first: there are few, they are older, and a backlog of new mail (a
    campaign) must not hold them back."""
    app = make_app(make_server(smtp_sink)).app
    now = timezone.now()

    def row(subject: str, **fields) -> SendLog:
        log = queue_one(app, subject=subject)
        if fields:
            SendLog.objects.filter(pk=log.pk).update(**fields)
        return log

    # Made first (lower ids), so the order below is not just the order of the ids.
    retry_due_later = row("retry due 10 s ago", status=S.RETRYING, attempts=1,
                          next_attempt_at=now - timedelta(seconds=10))
    retry_due_first = row("retry due 60 s ago", status=S.RETRYING, attempts=1,
                          next_attempt_at=now - timedelta(seconds=60))
    retry_future = row("retry not due", status=S.RETRYING, attempts=1, next_attempt_at=now + timedelta(minutes=5))
    sending = row("another worker's", status=S.SENDING, claim_token="another-worker", claimed_at=now)
    sent = row("sent", status=S.SENT, sent_at=now)
    failed = row("failed", status=S.FAILED)
    queued_old = row("queued first")
    queued_new = row("queued second")

    def ids(rows: list[SendLog]) -> set[int]:
        return {r.id for r in rows}

    assert ids(delivery.claim_waiting(1)) == {retry_due_first.id}
    assert ids(delivery.claim_waiting(2)) == {retry_due_later.id, queued_old.id}
    assert ids(delivery.claim_waiting(10)) == {queued_new.id}
    assert delivery.claim_waiting(10) == []

    claimed = [queued_old, queued_new, retry_due_first, retry_due_later]
    assert statuses(claimed) == [S.SENDING] * 4
    for log in claimed:
        log.refresh_from_db()
        assert log.claim_token and log.claimed_at is not None
    retry_future.refresh_from_db()
    assert (retry_future.status, retry_future.claim_token) == (S.RETRYING, "")
    sending.refresh_from_db()
    assert (sending.status, sending.claim_token) == (S.SENDING, "another-worker")
    assert statuses([sent, failed]) == [S.SENT, S.FAILED]
    assert smtp_sink.messages == []


def test_drain_without_time_left_delivers_nothing_and_hands_over(smtp_sink, make_server, make_app, run_queue,
                                                                  settings):
    app = make_app(make_server(smtp_sink)).app
    rows = [queue_one(app, subject=f"m{i}") for i in range(3)]
    OrmQ.objects.all().delete()  # this test runs the drain itself
    settings.HUB_BATCH_TIME_BUDGET_SECONDS = 0

    assert delivery.drain() == 0

    assert statuses(rows) == [S.QUEUED] * 3
    assert not SendLog.objects.filter(status=S.SENDING).exists()
    assert smtp_sink.messages == []
    assert tasks() == ["hub.tasks.drain"]  # a fresh task takes over

    settings.HUB_BATCH_TIME_BUDGET_SECONDS = 40
    assert run_queue() == 1
    assert statuses(rows) == [S.SENT] * 3
    assert len(smtp_sink.messages) == 3


def test_claimed_rows_past_the_deadline_go_back_to_the_outbox(smtp_sink, make_server, make_app, run_queue):
    app = make_app(make_server(smtp_sink)).app
    rows = [queue_one(app, subject=f"m{i}") for i in range(3)]
    forget_wakeup()
    claimed = delivery.claim_waiting(10)
    assert len(claimed) == 3

    delivery.deliver_claimed(claimed, time.monotonic() - 1)

    assert statuses(rows) == [S.QUEUED] * 3
    for row in rows:
        row.refresh_from_db()
        assert (row.claim_token, row.claimed_at, row.attempts) == ("", None, 0)
    assert smtp_sink.messages == []
    assert tasks() == ["hub.tasks.drain"]  # handed back with a wake-up
    assert run_queue() == 1
    assert statuses(rows) == [S.SENT] * 3


# --- a lost wake-up, an old task -------------------------------------------------------------

def test_the_sweeper_wakes_the_workers_for_a_lost_wakeup(smtp_sink, make_server, make_app, run_queue, settings):
    settings.HUB_STUCK_QUEUED_SECONDS = 60
    row = queue_one(make_app(make_server(smtp_sink)).app)
    # The process died between its commit and the wake-up: no task, no request.
    forget_wakeup()

    assert sweep()["due"] == 0  # young: its wake-up may still come
    assert OrmQ.objects.count() == 0

    SendLog.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(seconds=61))
    assert sweep()["due"] == 1
    assert tasks() == ["hub.tasks.drain"]

    assert run_queue() == 1
    row.refresh_from_db()
    assert row.status == S.SENT, row.error
    assert len(smtp_sink.messages) == 1


def test_an_old_style_deliver_task_still_delivers_its_row(smtp_sink, make_server, make_app, run_queue):
    row = queue_one(make_app(make_server(smtp_sink)).app)
    OrmQ.objects.all().delete()
    # As the hub queued it before the outbox: one task per message, naming its row.
    async_task("hub.tasks.deliver", [row.id], task_name=f"deliver-{row.id}")
    async_task("hub.tasks.deliver", [row.id], task_name=f"deliver-{row.id}")  # and a duplicate
    assert tasks() == ["hub.tasks.deliver", "hub.tasks.deliver"]

    assert run_queue() == 2

    row.refresh_from_db()
    assert row.status == S.SENT, row.error
    assert len(smtp_sink.messages) == 1  # the duplicate found it taken



def test_a_failing_wakeup_does_not_fail_the_accepted_send(client, smtp_sink, make_server, make_app, run_queue,
                                                          monkeypatch, caplog):
    """The row is committed before the wake-up: an error there must not become a 500 (the
    client would retry and send the message twice). It is logged; the sweeper wakes later."""
    p = make_app(make_server(smtp_sink))
    forget_wakeup()

    def broken():
        raise RuntimeError("broker down")

    monkeypatch.setattr("hub.delivery.outbox._wake", broken)
    r = client.post("/api.php", good_fields(p.creds))
    assert r.status_code == 200 and r.json()["code"] == 0, r.content
    assert SendLog.objects.get(pk=r.json()["id"]).status == S.QUEUED
    assert tasks() == []
    assert "could not wake the delivery workers" in caplog.text

    monkeypatch.undo()
    assert wake_workers() is True
    assert run_queue() == 1
    assert SendLog.objects.get(pk=r.json()["id"]).status == S.SENT


def test_a_drain_that_dies_asks_for_another(smtp_sink, make_server, make_app, run_queue, monkeypatch):
    """A drain clears the wake-up request before it claims; if it then dies (the database
    went away), the rows whose senders saw that request must not wait for the sweeper."""
    p = make_app(make_server(smtp_sink))
    row = queue_one(p.app)
    forget_wakeup()

    def broken(limit):
        raise RuntimeError("database went away")

    monkeypatch.setattr(delivery, "claim_waiting", broken)
    with pytest.raises(RuntimeError):
        delivery.drain()
    assert tasks() == ["hub.tasks.drain"]  # asked for a successor

    monkeypatch.undo()
    assert run_queue() == 1
    assert SendLog.objects.get(pk=row.pk).status == S.SENT
