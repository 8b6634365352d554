"""Direct delivery's destinations (hub.delivery.destinations): "too many" replies slow a
destination down (fewer connections, a lower rate, a pause) without failing or counting
against the mail, which is delivered once the destination allows; recovery step by step;
pacing by rate; providers matched by domain or MX host (presets)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from hub.delivery import destinations
from hub.models import Destination, DestinationDeferral, SendLog

from .direct_world import GreylistHandler

S = SendLog.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def backoff(settings):
    settings.HUB_DIRECT_BACKOFF_SECONDS = 30
    settings.HUB_DIRECT_BACKOFF_START_RATE = 6000  # fast enough for a test once cut
    settings.HUB_DIRECT_RECOVERY_EVERY = 2


def time_passes(rows: list[SendLog]) -> None:
    """Instead of waiting: the destination's pause is over and the rows are due."""
    Destination.objects.update(paused_until=None, next_send_at=None)
    SendLog.objects.filter(pk__in=[r.pk for r in rows], status=S.RETRYING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.parametrize(("code", "text", "slow"), [
    (421, "4.7.0 Try again later, closing connection. (EHLO) - gsmtp", True),
    (421, "Service not available", True),
    (450, "4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages",
     True),
    (451, "4.7.500 Server busy. Please try again later from [1.2.3.4]", True),
    (451, "Requested mail action aborted, mailbox frequency limited", True),
    (450, "收件人邮件过于频繁，请稍后重试", True),
    (451, "4.3.0 Temporary local problem", False),
    (450, "4.2.0 Greylisted, see https://postgrey.schweikert.ch/", False),
    (550, "5.7.1 Too many recipients (a permanent refusal is never a slow-down)", False),
    (None, "connection refused", False),
])
def test_which_replies_mean_slow_down(code, text, slow):
    assert destinations.throttled(code, text) is slow


def test_421_slows_the_destination_then_everything_is_delivered(world, backoff):
    handler = GreylistHandler(times=3)
    sink = world.domain("busy.test", "127.0.0.2", handler=handler)
    rows = [world.send(f"u{i}@busy.test", subject=f"m{i}") for i in range(6)]
    rows = world.deliver(*rows)
    dest = Destination.objects.get(name="busy.test")
    # One "too many": half the connections (5 -> 2), a rate where there was none, a pause.
    assert (dest.adaptive_connections, dest.adaptive_rate, dest.backoff_level) == (2, 6000, 1)
    assert dest.paused_until > timezone.now() and dest.deferrals_total == 1
    [deferral] = DestinationDeferral.objects.filter(destination=dest)
    assert deferral.smtp_code == 421 and deferral.host == "mx.busy.test"
    # Nothing failed and nothing counted: the rows wait for the destination (the others were
    # not even tried while it is paused: one MAIL reached the sink).
    assert {r.status for r in rows} == {S.RETRYING} and {r.attempts for r in rows} == {0}
    assert all(r.next_attempt_at >= dest.paused_until - timedelta(seconds=1) for r in rows)
    assert handler.refused_count == 1 and sink.messages == []
    for _round in range(10):  # bounded: 2 more deferrals, then every row goes
        waiting = [r for r in rows if r.status != S.SENT]
        if not waiting:
            break
        time_passes(waiting)
        world.deliver(*waiting)
        rows = [SendLog.objects.get(pk=r.pk) for r in rows]
    assert all(r.status == S.SENT for r in rows), [r.error for r in rows]
    assert sorted(m.message["Subject"] for m in sink.messages) == [f"m{i}" for i in range(6)]  # each once
    assert {r.attempts for r in rows} == {1}  # only the delivery counted
    dest.refresh_from_db()
    assert dest.deferrals_total == 3 and handler.refused_count == 3
    # Cut three times (5 -> 2 -> 1 -> 1 connections, rate halved twice), then six deliveries
    # gave back three steps (one connection and a tenth of the ceiling each).
    assert dest.adaptive_connections == 4 and dest.backoff_level == 0
    assert dest.adaptive_rate == pytest.approx(1500 + 3 * 1200)


def test_a_slowed_destination_recovers_to_its_own_limits(world, backoff):
    world.domain("busy.test", "127.0.0.2")
    dest = destinations.find("busy.test", "mx.busy.test")
    destinations.deferred(dest, "mx.busy.test", 421, "4.7.0 too many connections")
    Destination.objects.filter(pk=dest).update(paused_until=None)
    for _round in range(12):  # bounded; each step needs 2 deliveries
        row = Destination.objects.get(pk=dest)
        if row.adaptive_connections is None and row.adaptive_rate is None:
            break
        [sent] = world.deliver(world.send("x@busy.test"))
        assert sent.status == S.SENT
        Destination.objects.filter(pk=dest).update(next_send_at=None)
    row = Destination.objects.get(pk=dest)
    assert (row.adaptive_connections, row.adaptive_rate, row.backoff_level) == (None, None, 0)
    assert row.connection_limit == row.max_connections and row.rate_limit is None


def test_further_deferrals_while_paused_cut_nothing_more():
    dest = Destination.objects.create(name="p.test", max_connections=8, rate_per_minute=100)
    destinations.deferred(dest.pk, "mx.p.test", 421, "too many")
    destinations.deferred(dest.pk, "mx.p.test", 421, "too many")
    dest.refresh_from_db()
    assert (dest.adaptive_connections, dest.adaptive_rate, dest.backoff_level, dest.deferrals_total) == (4, 50, 1, 2)


def test_the_pause_doubles_with_each_level_up_to_the_maximum(settings):
    settings.HUB_DIRECT_BACKOFF_SECONDS, settings.HUB_DIRECT_BACKOFF_MAX_SECONDS = 10, 35
    dest = Destination.objects.create(name="p.test")
    pauses = []
    for _ in range(4):
        pauses.append(round(destinations.deferred(dest.pk, "mx", 421, "too many")))
        Destination.objects.filter(pk=dest.pk).update(paused_until=None)
    assert pauses == [10, 20, 35, 35]


def test_the_recent_deferrals_kept_are_bounded(settings):
    settings.HUB_DIRECT_DEFERRALS_KEPT = 3
    dest = Destination.objects.create(name="p.test")
    for i in range(5):
        destinations.deferred(dest.pk, "mx", 421, f"too many #{i}")
    assert list(DestinationDeferral.objects.filter(destination=dest).values_list("reply", flat=True)) == [
        "too many #4", "too many #3", "too many #2"]


def test_a_rate_paces_transactions_and_the_rest_wait_uncounted(world):
    sink = world.domain("slow.test", "127.0.0.2")
    Destination.objects.create(name="slow", domains="slow.test", rate_per_minute=60)
    destinations.clear_cache()
    rows = world.deliver(*[world.send(f"u{i}@slow.test") for i in range(3)])
    assert [r.status for r in rows] == [S.SENT, S.RETRYING, S.RETRYING]
    assert [r.attempts for r in rows] == [1, 0, 0] and len(sink.messages) == 1
    now = timezone.now()
    # Due within the pacing interval (1 s at 60 per minute, 2 s for the third).
    assert all(now < r.next_attempt_at < now + timedelta(seconds=3) for r in rows[1:])
    assert "paced" in rows[1].error


def test_admit_is_a_cell_rate_with_one_seconds_burst():
    dest = Destination.objects.create(name="r.test", rate_per_minute=120)  # 2 per second
    assert destinations.admit(dest.pk)[1] == 0 and destinations.admit(dest.pk)[1] == 0
    _row, wait = destinations.admit(dest.pk)
    assert 0 < wait <= 0.5


def test_providers_are_matched_by_domain_and_by_mx_host(world):
    destinations.load_presets(["gmail", "qq"])
    world.mx("corp.test", "1 aspmx.l.google.com")  # a company on Google Workspace
    world.host("aspmx.l.google.com", "127.0.0.2")
    sink = world.sink("127.0.0.2")
    gmail = Destination.objects.get(name="gmail")
    assert destinations.find("corp.test", "aspmx.l.google.com") == gmail.pk
    assert destinations.find("gmail.com", "gmail-smtp-in.l.google.com") == gmail.pk
    assert destinations.find("foxmail.com", "mx1.qq.com") == Destination.objects.get(name="qq").pk
    own = destinations.find("elsewhere.test", "mx.elsewhere.test")
    assert Destination.objects.get(pk=own).name == "elsewhere.test"
    [row] = world.deliver(world.send("boss@corp.test"))
    assert row.status == S.SENT and len(sink.messages) == 1


def test_load_presets_resets_edited_values_but_keeps_the_adaptive_state():
    [qq] = destinations.load_presets(["qq"])
    Destination.objects.filter(pk=qq.pk).update(max_connections=50, adaptive_connections=1)
    [qq] = destinations.load_presets(["qq"], reset=True)
    assert (qq.max_connections, qq.adaptive_connections) == (3, 1)
