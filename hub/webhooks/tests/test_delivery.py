"""End to end: a real delivery to the SMTP sink emits sent/failed, the receiver on
hub.events writes the outbox in the same transaction, the queue's drain POSTs the events,
signed, to a real HTTP receiver that verifies signature and timestamp."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import transaction
from django.utils import timezone

from hub import events
from hub.models import FailureType, SendLog
from hub.webhooks import outbox
from hub.webhooks.models import Attempt, Event

GHOST = "ghost@example.com"
UNKNOWN = "550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown in virtual mailbox table"


@pytest.fixture
def sending(smtp_sink_factory, make_server, make_app):
    sink = smtp_sink_factory(refuse={GHOST: UNKNOWN})
    return sink, make_app(make_server(sink), name="webhooks")


def test_sent_and_failed_reach_the_receiver_signed(client, sending, run_queue, receiver, make_endpoint,
                                                   django_capture_on_commit_callbacks):
    sink, p = sending
    endpoint = make_endpoint(p.app.account, receiver.url, kinds="sent,failed")
    r = client.post("/api.php", urlencode({"action": "send", **p.creds, "to": f"bob@example.com,{GHOST}",
                                           "subject": "测试", "message": "<p>你好</p>"}),
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200, r.content
    # The delivery drain; the outbox rows commit with the outcome, and the commit wakes
    # the webhook drain (the test's own transaction never commits: its callbacks run here).
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert run_queue() == 1
    assert any(getattr(c, "__name__", "") == "wake" for c in callbacks)
    assert run_queue() == 1  # the webhook drain
    row = SendLog.objects.get(pk=r.json()["id"])
    assert row.status == SendLog.Status.SENT and len(sink.messages) == 1

    assert len(receiver.requests) == 1 and receiver.accepted == receiver.requests
    request = receiver.requests[0]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Hub-Delivery"] == Attempt.objects.get().delivery_id
    by_email = {e["email"]: e for e in request.events}
    assert set(by_email) == {"bob@example.com", GHOST}
    sent, failed = by_email["bob@example.com"], by_email[GHOST]
    assert sent["type"] == "sent" and sent["data"] == {"smtp_code": 250}
    assert failed["type"] == "failed" and failed["data"]["failure_type"] == FailureType.NOT_EXIST
    assert failed["data"]["smtp_code"] == 550 and "User unknown" in failed["data"]["reason"]
    for e in (sent, failed):
        assert (e["log_id"], e["app_id"], e["customer_id"]) == (row.id, p.app.id, p.app.account_id)
    assert set(Event.objects.filter(endpoint=endpoint).values_list("status", "attempts")) == {("delivered", 1)}
    attempt = Attempt.objects.get()
    assert attempt.ok and attempt.status_code == 200 and attempt.response == "ok" and attempt.event_count == 2


def test_retries_with_backoff_on_500_then_success(receiver, make_endpoint, account):
    endpoint = make_endpoint(account, receiver.url)
    receiver.statuses = [500]
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(), account_id=account.pk))
    event = Event.objects.get()

    before = timezone.now()
    assert outbox.deliver_due() == 1
    event.refresh_from_db()
    endpoint.refresh_from_db()
    assert (event.status, event.attempts) == ("pending", 1)
    # Attempt 1 waits BASE (30 s) times a jitter in [0.5, 1.0].
    wait = (event.next_attempt_at - before).total_seconds()
    assert 15 - 1 <= wait <= 30 + 1
    assert endpoint.failures == 1 and endpoint.retry_at is not None
    failed = Attempt.objects.get()
    assert (failed.ok, failed.status_code, failed.error) == (False, 500, "HTTP 500")
    assert failed.response.startswith("receiver error") and len(failed.response) == 1000  # truncated
    # Not due yet: nothing is sent.
    assert outbox.deliver_due() == 0 and len(receiver.requests) == 1

    later = max(event.next_attempt_at, endpoint.retry_at) + timedelta(seconds=1)
    assert outbox.deliver_due(now=later) == 1
    event.refresh_from_db()
    endpoint.refresh_from_db()
    assert (event.status, event.attempts, event.last_attempt.status_code) == ("delivered", 2, 200)
    assert endpoint.failures == 0 and endpoint.retry_at is None
    assert [r.events[0]["id"] for r in receiver.accepted] == [event.pk, event.pk]  # the same id: dedupe


def test_the_backoff_doubles_up_to_its_cap(settings):
    settings.HUB_WEBHOOK_RETRY_BASE_SECONDS, settings.HUB_WEBHOOK_RETRY_MAX_SECONDS = 10, 100
    for attempts, ceiling in ((1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)):
        for _ in range(20):
            assert ceiling * 0.5 <= outbox.retry_delay(attempts) <= ceiling


def test_a_dead_endpoint_ends_failed_after_the_limit(settings, make_endpoint, account):
    from conftest import free_port

    settings.HUB_WEBHOOK_MAX_ATTEMPTS = 3
    make_endpoint(account, f"http://127.0.0.1:{free_port()}/nobody-listens")
    events.emit(events.Event(kind=events.Kind.OPENED, email="a@example.com", at=timezone.now(), account_id=account.pk,
                             data={"ip": "203.0.113.9", "machine": False}))
    event = Event.objects.get()
    now = timezone.now()
    for expected in (1, 2, 3):
        assert outbox.deliver_due(now=now) == 1
        event.refresh_from_db()
        assert event.attempts == expected
        now += timedelta(hours=2)  # past any backoff (cap 1 h)
    assert event.status == "failed" and event.next_attempt_at is None
    assert outbox.deliver_due(now=now) == 0
    attempts = list(Attempt.objects.order_by("id"))
    assert len(attempts) == 3 and not any(a.ok for a in attempts)
    assert all(a.status_code is None and "Connection" in a.error for a in attempts), [a.error for a in attempts]


def test_redirects_are_not_followed(receiver, make_endpoint, account):
    make_endpoint(account, receiver.url)
    receiver.statuses = [302]
    events.emit(events.Event(kind=events.Kind.CLICKED, email="a@example.com", at=timezone.now(), account_id=account.pk))
    assert outbox.deliver_due() == 1
    attempt = Attempt.objects.get()
    assert attempt.status_code == 302 and not attempt.ok
    assert "redirect not followed" in attempt.error and "169.254.169.254" in attempt.error
    assert len(receiver.requests) == 1  # nothing fetched at the Location
    assert Event.objects.get().status == "pending"


def test_a_receiver_that_does_not_answer_times_out(settings, receiver, make_endpoint, account):
    import threading

    settings.HUB_WEBHOOK_TIMEOUT_SECONDS = 0.5
    receiver.hold = threading.Event()
    make_endpoint(account, receiver.url)
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(), account_id=account.pk))
    assert outbox.deliver_due() == 1
    receiver.hold.set()
    attempt = Attempt.objects.get()
    assert not attempt.ok and attempt.status_code is None and "timed out" in attempt.error.lower()
    assert Event.objects.get().status == "pending"


def test_batches_under_load(settings, receiver, make_endpoint, account):
    settings.HUB_WEBHOOK_BATCH = 3
    make_endpoint(account, receiver.url)
    at = timezone.now()
    with transaction.atomic():
        for i in range(7):
            events.emit(events.Event(kind=events.Kind.SENT, email=f"r{i}@example.com", at=at, account_id=account.pk))
    ids = list(Event.objects.order_by("id").values_list("id", flat=True))
    assert outbox.drain() == 7
    assert [len(r.events) for r in receiver.accepted] == [3, 3, 1]
    assert [e["id"] for r in receiver.accepted for e in r.events] == ids  # oldest first
    assert Attempt.objects.count() == 3 and set(Event.objects.values_list("status", flat=True)) == {"delivered"}


def test_resend_delivers_the_same_event_again(receiver, make_endpoint, account):
    from hub.webhooks import services

    endpoint = make_endpoint(account, receiver.url)
    events.emit(events.Event(kind=events.Kind.BOUNCED, email="a@example.com", at=timezone.now(), account_id=account.pk,
                             data={"failure_type": 3, "reason": "mailbox full", "hard": False}))
    event = Event.objects.get()
    assert outbox.deliver_due() == 1
    assert services.resend(account, endpoint.pk, [event.pk]) == 1
    event.refresh_from_db()
    assert (event.status, event.attempts, event.delivered_at) == ("pending", 0, None)
    assert outbox.deliver_due() == 1
    assert [r.events[0]["id"] for r in receiver.accepted] == [event.pk, event.pk]
    assert receiver.accepted[1].events[0]["data"] == {"failure_type": 3, "reason": "mailbox full", "hard": False}
    event.refresh_from_db()
    assert event.status == "delivered" and Attempt.objects.count() == 2


def test_an_event_in_a_rolled_back_transaction_is_never_delivered(receiver, make_endpoint, account, run_queue):
    make_endpoint(account, receiver.url)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(),
                                 account_id=account.pk))
        assert Event.objects.count() == 1  # written inside, with the change it tells of
        raise Boom
    assert Event.objects.count() == 0
    run_queue()
    assert outbox.drain() == 0 and receiver.requests == []


def test_only_subscribed_enabled_endpoints_of_the_account_get_rows(receiver, make_endpoint, account, other):
    mine = make_endpoint(account, receiver.url, kinds="sent")
    make_endpoint(account, receiver.url, kinds="sent", enabled=False)
    theirs = make_endpoint(other, receiver.url, kinds="sent,opened")
    at = timezone.now()
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=at, account_id=account.pk))
    events.emit(events.Event(kind=events.Kind.OPENED, email="a@example.com", at=at, account_id=account.pk))
    events.emit(events.Event(kind=events.Kind.SENT, email="b@example.com", at=at, app_id=None))  # no account
    assert list(Event.objects.values_list("endpoint_id", "kind", "email")) == [(mine.pk, "sent", "a@example.com")]
    assert not Event.objects.filter(endpoint=theirs).exists()


def test_a_new_endpoint_is_seen_at_once_in_its_own_process(make_endpoint, account, receiver):
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(), account_id=account.pk))
    assert Event.objects.count() == 0  # the snapshot now knows "no endpoints"
    endpoint = make_endpoint(account, receiver.url, kinds="sent")
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(), account_id=account.pk))
    assert Event.objects.count() == 1
    endpoint.enabled = False
    endpoint.save()
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(), account_id=account.pk))
    assert Event.objects.count() == 1


def test_a_disabled_endpoint_keeps_its_events_until_enabled(receiver, make_endpoint, account):
    endpoint = make_endpoint(account, receiver.url, kinds="sent")
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(), account_id=account.pk))
    endpoint.enabled = False
    endpoint.save()
    assert outbox.deliver_due() == 0 and receiver.requests == []
    endpoint.enabled = True
    endpoint.save()
    assert outbox.deliver_due() == 1 and len(receiver.accepted) == 1


def test_the_sweep_releases_stuck_claims_expires_and_wakes(settings, receiver, make_endpoint, account):
    from django_q.models import OrmQ

    from hub.webhooks.models import Wakeup

    make_endpoint(account, receiver.url)
    for email in ("stuck@example.com", "old@example.com"):
        events.emit(events.Event(kind=events.Kind.SENT, email=email, at=timezone.now(), account_id=account.pk))
    long_ago = timezone.now() - timedelta(days=4)
    Event.objects.filter(email="stuck@example.com").update(status="sending", claim_token="x", claimed_at=long_ago)
    Event.objects.filter(email="old@example.com").update(created_at=long_ago)
    Wakeup.objects.all().delete()
    OrmQ.objects.all().delete()
    result = outbox.sweep()
    assert (result["released"], result["expired"], result["due"]) == (1, 1, 1)
    assert Event.objects.get(email="stuck@example.com").status == "pending"
    assert Event.objects.get(email="old@example.com").status == "failed"
    assert OrmQ.objects.count() == 1  # a drain was queued


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_deleted_by_another_process_does_not_break_the_commit(receiver, make_endpoint):
    """This process's snapshot still names an endpoint another process deleted: the outbox
    row is written, the emitter's transaction still commits (mail is never held up), and
    the orphan is never delivered."""
    from django.db import connection

    from hub.models import Account
    from hub.webhooks import subscriptions

    account = Account.objects.create(name="committed")
    endpoint = make_endpoint(account, receiver.url, kinds="sent")
    assert subscriptions.targets(events.Event(kind=events.Kind.SENT, email="x@example.com", at=timezone.now(),
                                              account_id=account.pk)) == [(endpoint.pk, account.pk)]
    with connection.cursor() as cursor:  # as another process would: no signal reaches this one
        cursor.execute(f"DELETE FROM {Event._meta.get_field('endpoint').related_model._meta.db_table} "
                       f"WHERE id = %s", [endpoint.pk])
    with transaction.atomic():
        SendLog.objects.count()
        events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(),
                                 account_id=account.pk))
    assert Event.objects.filter(endpoint_id=endpoint.pk).count() == 1  # committed
    assert outbox.deliver_due() == 0 and receiver.requests == []


def test_an_outcome_does_not_overwrite_a_claim_taken_over(receiver, make_endpoint, account):
    """The sweep released a drain's claim (it ran too long) and another drain took the
    events: the first drain's late result is logged as an attempt but changes no event."""
    endpoint = make_endpoint(account, receiver.url)
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(), account_id=account.pk))
    claimed = outbox.claim(endpoint, timezone.now())
    batch = outbox._prepare(endpoint, claimed)
    Event.objects.update(claim_token="someone-else")
    outbox._send(batch)
    outbox.record(batch)
    event = Event.objects.get()
    assert (event.status, event.attempts, event.claim_token) == ("sending", 0, "someone-else")
    assert Attempt.objects.get().ok and len(receiver.accepted) == 1


def test_a_row_whose_delivery_crashes_still_ends_failed_and_is_told(smtp_sink, make_server, make_app, settings,
                                                                    make_endpoint):
    """An address without an ASCII form crashes the delivery; with a receiver listening, the
    abandon still records `failed` (the event names the address as written)."""
    from hub.delivery.outbox import deliver_batch

    settings.HUB_RETRY_SCHEDULE = [0, 0]
    app = make_app(make_server(smtp_sink)).app
    make_endpoint(app.account, "https://hooks.example.com/", kinds="failed")
    row = SendLog.objects.create(app=app, to="alice@example.com\ufffd", subject="poison", html_body="<p>x</p>")
    for _ in range(10):
        row.refresh_from_db()
        if row.is_final:
            break
        assert row.status in (SendLog.Status.QUEUED, SendLog.Status.RETRYING)
        SendLog.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        deliver_batch([row.id])
    row.refresh_from_db()
    assert row.status == SendLog.Status.FAILED
    assert list(Event.objects.values_list("kind", "email", "log_id")) == [("failed", "alice@example.com\ufffd", row.pk)]
