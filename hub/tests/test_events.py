"""hub.events: the delivery engine tells receivers each recipient's final state (sent, or
failed with its failure type), inside the transaction that records it; a receiver that
raises is logged and does not undo the outcome."""

from __future__ import annotations

import logging

import pytest

from api.tests.test_send_api import good_fields, post
from hub import events
from hub.models import FailureType, SendLog

GHOST = "ghost@example.com"
UNKNOWN = "550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown in virtual mailbox table"


@pytest.fixture
def sending(smtp_sink_factory, make_server, make_app):
    sink = smtp_sink_factory(refuse={GHOST: UNKNOWN})
    return sink, make_app(make_server(sink), name="events")


def test_sent_and_failed_recipients_are_told(client, sending, run_queue, told):
    _sink, p = sending
    r = post(client, "/api.php", good_fields(p.creds, to=f"bob@example.com,{GHOST}"))
    assert r.status_code == 200, r.content
    assert run_queue() == 1
    row = SendLog.objects.get(pk=r.json()["id"])

    assert row.status == SendLog.Status.SENT
    by_email = {e.email: e for e in told}
    assert set(by_email) == {"bob@example.com", GHOST}
    assert by_email["bob@example.com"].kind == events.Kind.SENT
    assert by_email["bob@example.com"].data["smtp_code"] == 250
    failed = by_email[GHOST]
    assert (failed.kind, failed.data["failure_type"], failed.data["smtp_code"]) == (
        events.Kind.FAILED, FailureType.NOT_EXIST, 550)
    assert {(e.app_id, e.log_id) for e in told} == {(p.app.id, row.id)}


def test_a_failing_receiver_is_logged_and_the_outcome_stands(client, sending, run_queue, told, caplog):
    _sink, p = sending

    def broken(sender, event, **kwargs):
        raise RuntimeError("receiver bug")

    events.happened.connect(broken, dispatch_uid="test-events-broken")
    try:
        r = post(client, "/api.php", good_fields(p.creds, to="carol@example.com"))
        with caplog.at_level(logging.ERROR, logger="hub.events"):
            assert run_queue() == 1
    finally:
        events.happened.disconnect(dispatch_uid="test-events-broken")

    assert SendLog.objects.get(pk=r.json()["id"]).status == SendLog.Status.SENT
    assert [e.kind for e in told] == [events.Kind.SENT]
    assert "receiver bug" in caplog.text


@pytest.mark.django_db
def test_a_database_error_in_a_receiver_fails_the_emitters_transaction():
    """A deadlock rolls back the whole InnoDB transaction (the outcome with it): carrying on
    would commit what ran after it alone, so emit raises it inside a transaction."""
    from django.db import OperationalError, transaction

    def deadlocked(sender, event, **kwargs):
        raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")

    event = events.Event(kind=events.Kind.SENT, email="a@example.com", at=None, log_id=1)
    events.happened.connect(deadlocked, dispatch_uid="test-events-deadlock")
    try:
        with pytest.raises(OperationalError), transaction.atomic():
            events.emit(event)
    finally:
        events.happened.disconnect(dispatch_uid="test-events-deadlock")


def test_outside_a_transaction_a_receivers_database_error_is_logged(caplog):
    from django.db import OperationalError, transaction

    def broken(sender, event, **kwargs):
        raise OperationalError("no such table")

    events.happened.connect(broken, dispatch_uid="test-events-db-broken")
    try:
        assert not transaction.get_connection().in_atomic_block
        with caplog.at_level(logging.ERROR, logger="hub.events"):
            events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=None, log_id=1))
    finally:
        events.happened.disconnect(dispatch_uid="test-events-db-broken")
    assert "no such table" in caplog.text
