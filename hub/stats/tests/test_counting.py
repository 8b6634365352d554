"""The counters against an independent count of the raw SendLog rows, through the real
delivery engine to an in-process sink: sent, refused (one recipient of several, or the
only one), temporary refusals retried until sent, and until they fail; quota charged and
given back; the failure rows for the exports."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from hub.delivery.outbox import deliver_batch
from hub.models import Account, SendLog
from hub.sending import SendRequest, accept
from hub.stats.models import Failure, Tally

from .truth import counted, expected


def send(app, to: str, **fields) -> SendLog:
    return accept(app, SendRequest(to=to, subject=fields.pop("subject", "统计测试"), message="<p>hi</p>", **fields))


def deliver(*rows: SendLog) -> None:
    deliver_batch([r.id for r in rows])


def due(*rows: SendLog) -> None:
    SendLog.objects.filter(pk__in=[r.pk for r in rows]).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_counters_equal_the_raw_rows_through_real_delivery(app, sink, settings):
    settings.HUB_RETRY_SCHEDULE = [60, 60]
    sink.handler.refuse.update({"nobody@x.example": "550 5.1.1 User unknown", "full@x.example": "552 5.2.2 Mailbox full",
                                "later@x.example": "451 4.7.1 Try again later",
                                "never@x.example": "450 4.2.0 Mailbox busy"})
    ok = send(app, "ok@x.example")
    nobody = send(app, "nobody@x.example")
    partly = send(app, "a@x.example, full@x.example", cc="c@x.example")
    later = send(app, "later@x.example")
    never = send(app, "never@x.example")
    deliver(ok, nobody, partly, later, never)
    assert SendLog.objects.get(pk=later.pk).status == SendLog.Status.RETRYING
    # Retries: `later` is accepted on its second try; `never` is refused for good after its last.
    del sink.handler.refuse["later@x.example"]
    due(later, never)
    deliver(later, never)
    sink.handler.refuse["never@x.example"] = "550 5.7.1 Rejected as spam"
    due(never)
    deliver(never)
    statuses = dict(SendLog.objects.values_list("to", "status"))
    assert statuses == {"ok@x.example": "sent", "nobody@x.example": "failed", "a@x.example, full@x.example": "sent",
                        "later@x.example": "sent", "never@x.example": "failed"}
    truth = expected(app.account)
    assert counted(app.account) == truth
    (day,) = {k[0] for k in truth}
    c = truth[(day, 0, "")]
    # ok, a, c, later sent; nobody (1), full (2), never (4) failed; 7 charged; 2 given back.
    assert (c["sent"], c["failed"], c["type_1"], c["type_2"], c["type_4"]) == (4, 3, 1, 1, 1)
    assert (c["charged"], c["rebated"]) == (7, 2)
    assert sorted(Failure.objects.values_list("email", "failure_type")) == [
        ("full@x.example", 2), ("never@x.example", 4), ("nobody@x.example", 1)]
    # Retrying rows counted nothing until they ended: no counter for an unfinished row.
    assert sum(Tally.objects.values_list("sent", flat=True)) == 4


def test_a_day_account_gets_no_rebate_counted_for_yesterdays_charge(metered, app, sink):
    Account.objects.filter(pk=metered.pk).update(quota_type=Account.QuotaType.DAILY, quota_day=timezone.localdate())
    metered.refresh_from_db()
    sink.handler.refuse["nobody@x.example"] = "550 5.1.1 User unknown"
    today_row = send(app, "nobody@x.example")
    old_row = send(app, "nobody@x.example", subject="yesterday")
    SendLog.objects.filter(pk=old_row.pk).update(created_at=timezone.now() - timedelta(days=1))
    deliver(today_row, old_row)
    truth = expected(metered)
    assert counted(metered) == truth
    (c,) = truth.values()
    assert (c["failed"], c["charged"], c["rebated"]) == (2, 2, 1)


def test_unlimited_accounts_count_no_quota(account, sink, make_server, make_app):
    app = make_app(make_server(sink), account=account).app
    deliver(send(app, "ok@x.example"))
    (t,) = Tally.objects.filter(account=account)
    assert (t.sent, t.charged, t.rebated, t.campaign_id, t.marker) == (1, 0, 0, 0, "")


def test_rebuild_from_the_send_log_gives_the_receivers_counters(app, sink, settings):
    from django.core.management import call_command

    from hub.stats.models import Tally as T

    sink.handler.refuse.update({"nobody@x.example": "550 5.1.1 User unknown"})
    deliver(send(app, "ok@x.example"), send(app, "nobody@x.example"), send(app, "a@x.example, nobody@x.example"))
    live = sorted(T.objects.values_list("day", "hour", "campaign_id", "marker", "slot", "sent", "failed", "type_1",
                                        "charged", "rebated"))
    failures = sorted(Failure.objects.values_list("email", "failure_type", "log_id"))
    T.objects.all().delete()
    Failure.objects.all().delete()
    call_command("stats_rebuild", "--account", str(app.account_id))
    assert sorted(T.objects.values_list("day", "hour", "campaign_id", "marker", "slot", "sent", "failed", "type_1",
                                        "charged", "rebated")) == live
    assert sorted(Failure.objects.values_list("email", "failure_type", "log_id")) == failures
    assert counted(app.account) == expected(app.account)


def test_bounces_and_complaints_are_counted_and_exported(app, sink):
    from django.db import transaction

    from hub import events
    from hub.stats.services import day_stats

    row = send(app, "ok@x.example")
    deliver(row)
    now = timezone.now()
    with transaction.atomic():
        events.emit(events.Event(kind=events.Kind.BOUNCED, email="ok@x.example", at=now, app_id=app.pk, log_id=row.pk,
                                 data={"failure_type": 1, "reason": "5.1.1 user unknown (DSN)", "hard": True}))
        events.emit(events.Event(kind=events.Kind.COMPLAINED, email="ok@x.example", at=now, app_id=app.pk,
                                 log_id=row.pk, data={"feedback_type": "abuse"}))
        # Not tied to a message: not counted (tracking and unsubscribes count elsewhere).
        events.emit(events.Event(kind=events.Kind.BOUNCED, email="x@x.example", at=now, data={"failure_type": 1}))
        events.emit(events.Event(kind=events.Kind.OPENED, email="ok@x.example", at=now, log_id=row.pk))
    c = day_stats(app.account, timezone.localdate(now)).all
    assert (c.sent, c.failed, c.bounced, c.complained, c.t(1), c.charged, c.rebated) == (1, 0, 1, 1, 1, 1, 0)
    assert list(Failure.objects.values_list("email", "failure_type", "kind")) == [("ok@x.example", 1, "bounced")]


def test_a_row_whose_address_cannot_be_encoded_still_fails_and_is_counted(app, settings):
    """With a receiver connected, telling the outcome must not undo it: the address has no
    ASCII form (the reason the row fails), and is counted as written."""
    settings.HUB_RETRY_SCHEDULE = [0, 0]
    row = SendLog.objects.create(app=app, to="alice@example.com\ufffd", subject="poison", html_body="<p>x</p>",
                                 quota_charged=1)
    for _ in range(10):
        row.refresh_from_db()
        if row.is_final:
            break
        due(row)
        try:
            deliver(row)
        except Exception:  # noqa: BLE001, S110 - the task may crash; the row's fate is what is checked
            pass
    row.refresh_from_db()
    assert row.status == SendLog.Status.FAILED
    assert sum(Tally.objects.filter(account=app.account).values_list("failed", flat=True)) == 1
    assert list(Failure.objects.values_list("email", flat=True)) == ["alice@example.com\ufffd"]
