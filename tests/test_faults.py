"""Process-level fault tests: real `manage.py qcluster` processes against the test database,
real SMTP servers (aiosmtpd, scripted), real signals. Each test checks that every accepted
message ends `sent` or `failed` (lost = 0) and counts the copies the SMTP sink accepted, then
records a row of the fault table in var/fault-report.json (`python -m tests.faults` prints it).

The test process accepts mail through the real API (Django test client) and, where a test
needs it, runs the sweeper itself (`hub.sweeper.sweep()`), exactly what the cluster's
one-minute schedule would do, without waiting a minute."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from hub import sweeper
from hub.models import DeliveryAttempt, SendLog
from tests.faults import (
    Arrival,
    Clusters,
    CountingHandler,
    CountingSink,
    flush_redis,
    measure,
    record,
    redis_clusters_running,
    redis_reachable,
    redis_test_url,
    use_redis_broker,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Deadlines (seconds). A cluster needs a second or two to start; everything else is fast.
FIRST_PASS = 45
DRAIN = 60

S = SendLog.Status


# --- scripted SMTP servers -----------------------------------------------------------------

class DeferFirstHandler(CountingHandler):
    """451 the first time a message (log id) arrives, 250 after: a greylisting server."""

    async def reply(self, arrival: Arrival, seen_before: int) -> str:
        return "451 4.7.1 Greylisted, try again later" if seen_before == 0 else "250 2.0.0 Ok: queued"


class RefuseHandler(CountingHandler):
    """550 on every DATA: a permanent refusal."""

    async def reply(self, arrival: Arrival, seen_before: int) -> str:
        return "550 5.7.1 Message rejected by policy"


class StallHandler(CountingHandler):
    """While `stalling`, takes the message and never answers DATA (not for a minute, far past
    the client's timeout; aiosmtpd cancels the wait when the client hangs up). Never accepts
    a stalled message, so a stall cannot turn into a delivered copy."""

    def __init__(self, stall_seconds: float = 60.0):
        super().__init__()
        self.stalling = True
        self.stall_seconds = stall_seconds

    async def reply(self, arrival: Arrival, seen_before: int) -> str:
        if self.stalling:
            await asyncio.sleep(self.stall_seconds)
            return "451 4.4.2 Took too long"
        return "250 2.0.0 Ok: queued"


# --- fixtures and helpers ------------------------------------------------------------------

@pytest.fixture
def sinks():
    """Start CountingSinks; all stopped at the end (after the clusters, see `clusters`)."""
    started: list[CountingSink] = []

    def start(handler: CountingHandler) -> CountingSink:
        sink = CountingSink(handler)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


@pytest.fixture
def clusters(transactional_db, tmp_path, sinks):
    """Start qcluster processes; torn down before the sinks stop and before transactional_db
    flushes the tables, so no cluster writes into a database being emptied."""
    from django_q.models import Schedule

    # The tests drive the sweeper themselves. The migration's one-minute sweep schedule
    # exists only until the first transactional test flushes it; removing it keeps the
    # results independent of test order.
    Schedule.objects.filter(func="hub.tasks.sweep").delete()
    started = Clusters(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def post_messages(client, provisioned, count: int, tag: str) -> list[int]:
    """Accept `count` messages through the real API; returns their SendLog ids."""
    ids = []
    for i in range(count):
        response = client.post("/api/v1/send", {
            **provisioned.creds, "to": f"reader{i}@example.com", "subject": f"{tag} #{i}",
            "message": f"<p>{tag} message {i}</p>",
        })
        body = response.json()
        assert response.status_code == 200 and body["code"] == 0, body
        ids.append(body["id"])
    return ids


def statuses(ids: list[int]) -> Counter:
    return Counter(SendLog.objects.filter(pk__in=ids).values_list("status", flat=True))


def all_in(ids: list[int], *wanted: str) -> bool:
    return not SendLog.objects.filter(pk__in=ids).exclude(status__in=wanted).exists()


def make_due(ids: list[int]) -> int:
    """Bring the retries forward instead of waiting out the backoff."""
    return SendLog.objects.filter(pk__in=ids, status=S.RETRYING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1))


def report(request, result) -> None:
    record(result, request.node.name)
    print(f"\nFAULT {result}")


# --- 1. a transient refusal is retried -----------------------------------------------------

def test_451_then_250_is_retried_and_sent(request, client, clusters, sinks, make_server, make_app):
    handler = DeferFirstHandler()
    provisioned = make_app(make_server(sinks(handler), timeout=5))
    clusters.start()
    ids = post_messages(client, provisioned, 10, "greylisted")

    wait_until(lambda: all_in(ids, S.RETRYING), FIRST_PASS, "every message retrying after the 451", clusters)
    now = timezone.now()
    for row in SendLog.objects.filter(pk__in=ids):
        assert (row.attempts, row.smtp_code) == (1, 451), (row.id, row.attempts, row.smtp_code, row.error)
        assert row.next_attempt_at > now  # backoff: the retry waits (60 s by default)
    assert DeliveryAttempt.objects.filter(log_id__in=ids, result=DeliveryAttempt.Result.DEFERRED).count() == 10
    assert not handler.accepted_counts()

    # The backoff is over: the sweeper finds the due rows and wakes the workers.
    make_due(ids)
    assert sweeper.sweep()["due"] == 10
    wait_until(lambda: all_in(ids, S.SENT, S.FAILED), FIRST_PASS, "every retry finished", clusters)

    assert statuses(ids) == {S.SENT: 10}
    assert set(SendLog.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {2}
    assert handler.offered_counts() == Counter({i: 2 for i in ids})  # one 451, one 250 each
    result = measure("451 then 250 (greylisting), retried by the sweeper", ids, [handler])
    report(request, result)
    assert (result.sent, result.lost, result.duplicates) == (10, 0, 0)


# --- 2. a permanent refusal is not retried -------------------------------------------------

def test_550_fails_once_without_retry(request, client, clusters, sinks, make_server, make_app):
    from django_q.models import OrmQ

    handler = RefuseHandler()
    provisioned = make_app(make_server(sinks(handler), timeout=5))
    clusters.start()
    ids = post_messages(client, provisioned, 8, "refused")

    wait_until(lambda: all_in(ids, S.FAILED, S.SENT), FIRST_PASS, "every message final after the 550", clusters)
    for row in SendLog.objects.filter(pk__in=ids):
        assert (row.status, row.attempts, row.smtp_code) == (S.FAILED, 1, 550), (row.id, row.status, row.error)
        assert row.next_attempt_at is None
        assert row.failure_type is not None
    assert DeliveryAttempt.objects.filter(log_id__in=ids).count() == 8
    assert not DeliveryAttempt.objects.filter(log_id__in=ids).exclude(result=DeliveryAttempt.Result.REFUSED).exists()
    # Nothing left to retry: the sweeper finds no due row and no task waits on the broker.
    assert sweeper.sweep()["due"] == 0
    wait_until(lambda: not OrmQ.objects.exists(), 10, "the broker's queue to empty", clusters)
    assert handler.offered_counts() == Counter({i: 1 for i in ids})
    result = measure("550 on DATA: failed at once, never retried", ids, [handler])
    report(request, result)
    assert (result.failed, result.lost, result.duplicates) == (8, 0, 0)


# --- 3. the primary server goes away mid-run -----------------------------------------------

def test_primary_stopped_mid_run_fails_over_to_secondary(request, client, clusters, sinks, make_server, make_app):
    primary_handler = CountingHandler(delay=0.2)  # slow enough to stop it with work left
    secondary_handler = CountingHandler()
    primary_sink = sinks(primary_handler)
    primary = make_server(primary_sink, name="primary", timeout=2)
    secondary = make_server(sinks(secondary_handler), name="secondary", timeout=2)
    provisioned = make_app(primary, secondary)
    clusters.start()
    ids = post_messages(client, provisioned, 20, "failover")

    wait_until(lambda: sum(primary_handler.accepted_counts().values()) >= 3, FIRST_PASS,
               "the primary to take a few messages", clusters, poll=0.05)
    primary_sink.stop()  # open sessions drop, new connections are refused
    in_flight = SendLog.objects.filter(pk__in=ids, status=S.SENDING).count()

    # Everything not yet sent goes to the secondary, in the same pass (refused connection)
    # or after a retry (the message that was on the wire when the primary went away).
    wait_until(lambda: all_in(ids, S.SENT, S.FAILED, S.RETRYING), FIRST_PASS, "the first pass to end", clusters)
    wait_until(lambda: all_in(ids, S.SENT, S.FAILED), DRAIN, "every message final", clusters, poll=1.0,
               between=lambda: (make_due(ids), sweeper.sweep()))

    assert statuses(ids) == {S.SENT: 20}
    carriers = Counter(SendLog.objects.filter(pk__in=ids).values_list("smtp_server_id", flat=True))
    assert carriers[primary.id] >= 3 and carriers[secondary.id] >= 1, carriers
    # The stop hit messages on the primary: on the wire (deferred: disconnected) or about to
    # go (connect_failed: refused). Each of them was then carried by the secondary, and
    # none was taken for a permanent refusal.
    hit = DeliveryAttempt.objects.filter(log_id__in=ids, server=primary).exclude(result=DeliveryAttempt.Result.SENT)
    assert hit.exists()
    assert set(hit.values_list("result", flat=True)) <= {DeliveryAttempt.Result.DEFERRED,
                                                         DeliveryAttempt.Result.CONNECT_FAILED}
    assert set(SendLog.objects.filter(pk__in=hit.values("log_id")).values_list("smtp_server_id", flat=True)) == {
        secondary.id}
    primary.refresh_from_db()
    assert primary.failing_since is not None and primary.last_error  # visible as the server's health
    result = measure("primary SMTP server stopped mid-run (failover to secondary)", ids,
                     [primary_handler, secondary_handler],
                     note=f"{carriers[primary.id]} via primary, {carriers[secondary.id]} via secondary; "
                          f"{in_flight} in `sending` at the stop")
    report(request, result)
    assert (result.sent, result.lost) == (20, 0)
    assert result.duplicates <= in_flight


# --- 4. a server that stalls does not stall the worker ----------------------------------------

def test_stalled_server_times_out_and_worker_keeps_going(request, client, clusters, sinks, make_server, make_app):
    stall_handler = StallHandler()
    healthy_handler = CountingHandler()
    stalled_app = make_app(make_server(sinks(stall_handler), name="stalls", timeout=1), name="stalled app")
    healthy_app = make_app(make_server(sinks(healthy_handler), name="healthy", timeout=5), name="healthy app")
    clusters.start(workers=1)  # one worker: if a stall held it, nothing else could go out
    stalled_ids = post_messages(client, stalled_app, 3, "stalled")
    # The worker is now sitting on the stalled server...
    wait_until(lambda: sum(stall_handler.offered_counts().values()) >= 1, FIRST_PASS,
               "the first DATA to stall", clusters, poll=0.05)
    healthy_ids = post_messages(client, healthy_app, 3, "healthy")

    # ...and the other app's mail still goes out, while that server keeps stalling.
    wait_until(lambda: all_in(healthy_ids, S.SENT), FIRST_PASS, "the healthy app's mail", clusters)
    assert stall_handler.stalling and not stall_handler.accepted_counts()
    wait_until(lambda: all_in(stalled_ids, S.RETRYING, S.SENT, S.FAILED), FIRST_PASS,
               "the stalled messages to time out", clusters)
    for row in SendLog.objects.filter(pk__in=stalled_ids):
        assert (row.status, row.attempts) == (S.RETRYING, 1), (row.id, row.status, row.error)
        assert "timed out" in row.error, row.error
    assert not stall_handler.accepted_counts()

    # The server recovers; the retries go through.
    stall_handler.stalling = False
    wait_until(lambda: all_in(stalled_ids, S.SENT, S.FAILED), DRAIN, "the retries after recovery", clusters,
               poll=1.0, between=lambda: (make_due(stalled_ids), sweeper.sweep()))
    ids = stalled_ids + healthy_ids
    assert statuses(ids) == {S.SENT: 6}
    result = measure("SMTP server stalls on DATA past the 1 s timeout (other app keeps sending)", ids,
                     [stall_handler, healthy_handler],
                     note="1 worker; the healthy app's 3 went out while the stalled app's 3 timed out; "
                          "those were retried after the server recovered")
    report(request, result)
    assert (result.lost, result.duplicates) == (0, 0)


# --- 5. SIGKILL mid-send ---------------------------------------------------------------------

def test_sigkill_mid_send_loses_nothing(request, client, clusters, sinks, make_server, make_app, settings):
    # Slow to answer, so messages are on the wire at any time; it takes each message before
    # answering, so a worker killed while waiting for the 250 leaves a delivered message
    # that its row does not know about: the duplicate this test bounds.
    handler = CountingHandler(delay=0.3, accept_before_delay=True)
    server = make_server(sinks(handler), timeout=5)
    provisioned = make_app(server)
    first = clusters.start(name="qcluster-killed")
    ids = post_messages(client, provisioned, 60, "kill")

    wait_until(lambda: sum(handler.accepted_counts().values()) >= 8, FIRST_PASS, "deliveries under way",
               clusters, poll=0.05)
    first.kill()  # SIGKILL to the whole process group: sentinel, pusher, monitor, workers
    in_flight = SendLog.objects.filter(pk__in=ids, status=S.SENDING).count()
    at_kill = statuses(ids)
    delivered_at_kill = sum(handler.accepted_counts().values())

    # Recovery. Rows left in `sending` are rescued after HUB_STUCK_SENDING_SECONDS; rows still
    # `queued` wait for a drain. A drain task the dead cluster had requested (or taken off the
    # broker) leaves the wake-up flag set: it counts as lost after HUB_WAKEUP_STALE_SECONDS,
    # and the sweeps then wake the workers again. The bounds are 2 s here, so the sending
    # bound must exceed the longest delivery (in production it is Q_TIMEOUT + 60 s): the sink
    # answers at once from now on, and the restarted cluster's drains claim one row at a
    # time (HUB_DELIVERY_BATCH=1), so no claimed row waits in `sending` behind others.
    handler.delay = 0
    settings.HUB_STUCK_SENDING_SECONDS = 2
    settings.HUB_STUCK_QUEUED_SECONDS = 2
    settings.HUB_WAKEUP_STALE_SECONDS = 2
    clusters.start(name="qcluster-restarted", env={"HUB_STUCK_SENDING_SECONDS": "2", "HUB_STUCK_QUEUED_SECONDS": "2",
                                                   "HUB_WAKEUP_STALE_SECONDS": "2", "HUB_DELIVERY_BATCH": "1"})
    wait_until(lambda: all_in(ids, S.SENT, S.FAILED), DRAIN, "every message final after restart + sweeps",
               clusters, poll=1.0, between=sweeper.sweep)

    result = measure("SIGKILL of the qcluster process group mid-send, restart + sweep", ids, [handler],
                     note=f"{delivered_at_kill} taken by the sink before the kill; rows at the kill: "
                          f"{dict(sorted(at_kill.items()))}; at most max_connections "
                          f"({server.max_connections}) messages are on the wire to the server at a time "
                          "(issue 16: concurrent sessions), so they bound the duplicates")
    report(request, result)
    assert result.sent + result.failed == 60
    assert result.lost == 0
    assert result.failed == 0  # the sink accepts everything: nothing had a reason to fail
    # Claimed rows (a batch per task) are many more than the messages actually on the wire:
    # one per open connection, at most the server's max_connections across every worker (issue
    # 16; before it, one per worker process: 2). Only those can have reached the sink unrecorded.
    assert result.duplicates <= min(in_flight, server.max_connections), (result.duplicates, in_flight)


# --- 6. two clusters share one throttle -------------------------------------------------------

def max_in_window(times: list[float], window: float) -> int:
    """The most arrivals in any `window`-second sliding window."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_two_clusters_on_redis_share_a_per_minute_limit(request, client, clusters, sinks, make_server, make_app,
                                                        settings, monkeypatch):
    if connection.vendor != "mysql":
        pytest.skip("needs MariaDB: two worker machines sharing a throttle is a MariaDB + Redis deployment "
                    "(run with DATABASE_URL=mysql://...)")
    redis_url = redis_test_url()
    if why := redis_reachable(redis_url):
        pytest.skip(f"Redis is not reachable at {redis_url} (set HUB_TEST_REDIS_URL): {why}")
    # Both clusters and this process share the queue `django_q:smtphub:q` (the cluster name
    # cannot be changed per test through the environment): start from an empty Redis db.
    flush_redis(redis_url)
    use_redis_broker(monkeypatch, settings, redis_url)
    window, limit, count = 5, 3, 12
    settings.HUB_THROTTLE_MINUTE_SECONDS = window

    handler = CountingHandler()
    provisioned = make_app(make_server(sinks(handler), timeout=5, limit_per_minute=limit))
    # Drains claim one row at a time, so drains running at once in both clusters keep
    # competing for the server's slots (a drain holding 50 claimed rows would not).
    env = {"HUB_THROTTLE_MINUTE_SECONDS": str(window), "HUB_DELIVERY_BATCH": "1"}
    pair = [clusters.start(name=name, workers=2, redis_url=redis_url, env=env) for name in ("qcluster-a", "qcluster-b")]
    # Both must be up before the mail comes, or the first one could take all of it.
    wait_until(lambda: redis_clusters_running(redis_url) >= 2, FIRST_PASS, "both clusters to run", clusters)
    ids = post_messages(client, provisioned, count, "throttled")

    wait_until(lambda: all_in(ids, S.SENT, S.FAILED), DRAIN + 30, "every throttled message sent", clusters,
               poll=0.5, between=sweeper.sweep)

    times = handler.accepted_times()
    busiest = max_in_window(times, window)
    tasks = [cluster.delivery_tasks_started() for cluster in pair]
    result = measure(f"2 qclusters (MariaDB + Redis) sharing limit {limit} per {window} s window", ids, [handler],
                     note=f"busiest {window} s window at the sink: {busiest} messages; "
                          f"first to last arrival {times[-1] - times[0]:.1f} s; "
                          f"delivery tasks run by the clusters: {tasks[0]} + {tasks[1]}")
    report(request, result)
    assert (result.sent, result.lost, result.duplicates) == (count, 0, 0)
    assert busiest <= limit, [round(t - times[0], 2) for t in times]
    assert all(tasks), f"both clusters must have delivered, tasks per cluster: {tasks}"
    # Waiting for a slot is not a failed try.
    assert set(SendLog.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}
