"""hub.delivery.lease: which worker cluster holds a claimed row, and the rescue of a dead
cluster's rows (issue 17, item 3). Real processes are in tests/test_worker_lifecycle.py; here
the rules: who counts as dead, which rows are handed back, and what is left alone."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from hub import sweeper
from hub.delivery import lease, outbox
from hub.models import SendLog, WorkerCluster
from hub.tests.test_retry import queue_one

S = SendLog.Status


@pytest.fixture
def as_cluster(db, monkeypatch):
    """Run the test as a registered cluster's worker would (CLUSTER_ID set, row in the table)."""
    monkeypatch.setattr(lease, "CLUSTER_ID", "")
    cluster_id = lease.start_cluster()
    yield cluster_id


def dead_pid() -> int:
    """A pid that no longer exists (a child that has exited and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def register(cluster_id: str, *, pid: int, host: str | None = None, beat_seconds_ago: float = 0) -> WorkerCluster:
    now = timezone.now()
    return WorkerCluster.objects.create(id=cluster_id, host=host or lease.this_host(), pid=pid, started_at=now,
                                        beat_at=now - timedelta(seconds=beat_seconds_ago))


def claimed_by(cluster_id: str, app, count: int = 1) -> list[SendLog]:
    """Rows claimed by a worker of `cluster_id` (the token prefix is what identifies it)."""
    rows = [queue_one(app, to=f"r{i}@example.com") for i in range(count)]
    for i, row in enumerate(rows):
        SendLog.objects.filter(pk=row.pk).update(status=S.SENDING, claim_token=f"{cluster_id}-{i:019d}",
                                                 claimed_at=timezone.now())
    return rows


def test_a_clusters_claims_carry_its_id(as_cluster, make_app, make_server):
    app = make_app(make_server()).app
    row = queue_one(app)
    [claimed] = outbox.claim([row.id])
    assert claimed.claim_token.startswith(f"{as_cluster}-") and len(claimed.claim_token) == lease.TOKEN_LENGTH
    assert WorkerCluster.objects.get(pk=as_cluster).pid > 0


def test_claims_outside_a_cluster_are_plain(db, make_app, make_server, monkeypatch):
    monkeypatch.setattr(lease, "CLUSTER_ID", "")
    row = queue_one(make_app(make_server()).app)
    [claimed] = outbox.claim([row.id])
    assert "-" not in claimed.claim_token and len(claimed.claim_token) == 32


def test_rows_of_a_dead_process_on_this_host_are_due_at_once(as_cluster, make_app, make_server):
    app = make_app(make_server()).app
    register("deadbeef0001", pid=dead_pid())
    rows = claimed_by("deadbeef0001", app, 3)
    assert lease.rescue_lost() == 3
    for row in SendLog.objects.filter(pk__in=[r.id for r in rows]):
        assert (row.status, row.attempts, row.claim_token) == (S.RETRYING, 1, "")
        assert row.next_attempt_at <= timezone.now()  # due at once, not after the backoff
    assert not WorkerCluster.objects.filter(pk="deadbeef0001").exists()


def test_a_live_cluster_keeps_its_rows(as_cluster, make_app, make_server):
    app = make_app(make_server()).app
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        register("a11ve0000001", pid=live.pid)
        rows = claimed_by("a11ve0000001", app, 2)
        assert lease.rescue_lost() == 0
        assert set(SendLog.objects.filter(pk__in=[r.id for r in rows]).values_list("status", flat=True)) == {S.SENDING}
        assert WorkerCluster.objects.filter(pk="a11ve0000001").exists()
    finally:
        live.kill()
        live.wait(timeout=30)


def test_another_hosts_cluster_is_dead_only_after_the_lease(as_cluster, make_app, make_server, settings):
    app = make_app(make_server()).app
    settings.HUB_WORKER_LEASE_SECONDS = 60
    # Its pid means nothing here: only its heartbeat counts.
    register("e1sewhere001", pid=dead_pid(), host="other-machine pid:[1]", beat_seconds_ago=30)
    register("e1sewhere002", pid=dead_pid(), host="other-machine pid:[1]", beat_seconds_ago=61)
    fresh = claimed_by("e1sewhere001", app)
    stale = claimed_by("e1sewhere002", app)
    assert lease.rescue_lost() == 1
    assert SendLog.objects.get(pk=fresh[0].id).status == S.SENDING
    assert SendLog.objects.get(pk=stale[0].id).status == S.RETRYING


def test_rows_without_a_cluster_are_left_to_the_sweepers_timeout(as_cluster, make_app, make_server):
    app = make_app(make_server()).app
    row = queue_one(app)
    SendLog.objects.filter(pk=row.pk).update(status=S.SENDING, claim_token="f" * 32, claimed_at=timezone.now())
    register("deadbeef0002", pid=dead_pid())
    assert lease.rescue_lost() == 0
    assert SendLog.objects.get(pk=row.id).status == S.SENDING


def test_the_sweeper_rescues_dead_clusters_too(db, make_app, make_server, monkeypatch):
    monkeypatch.setattr(lease, "CLUSTER_ID", "")
    app = make_app(make_server()).app
    register("deadbeef0003", pid=dead_pid())
    rows = claimed_by("deadbeef0003", app, 2)
    assert sweeper.sweep()["rescued"] == 2
    assert set(SendLog.objects.filter(pk__in=[r.id for r in rows]).values_list("status", flat=True)) == {S.RETRYING}


def test_stopping_hands_back_own_rows_and_unregisters(as_cluster, make_app, make_server):
    app = make_app(make_server()).app
    rows = claimed_by(as_cluster, app, 2)
    assert lease.stop_cluster() == 2
    assert set(SendLog.objects.filter(pk__in=[r.id for r in rows]).values_list("status", flat=True)) == {S.RETRYING}
    assert not WorkerCluster.objects.exists()


def test_a_cluster_taken_for_dead_registers_again(as_cluster):
    WorkerCluster.objects.all().delete()
    lease.beat()
    assert WorkerCluster.objects.filter(pk=as_cluster).exists()


def test_worker_stopping_hands_back_the_row_on_the_wire_and_requeues_the_rest(as_cluster, make_app, make_server, monkeypatch):
    app = make_app(make_server()).app
    rows = [queue_one(app, to=f"s{i}@example.com") for i in range(3)]
    claimed = outbox.claim([r.id for r in rows])

    def interrupted(row, servers):
        raise lease.WorkerStopping(143)  # SIGTERM while the first message is on the wire

    monkeypatch.setattr(outbox, "deliver_row", interrupted)
    with pytest.raises(SystemExit):
        outbox.deliver_claimed(claimed, deadline=float("inf"))
    first, *rest = SendLog.objects.filter(pk__in=[r.id for r in rows]).order_by("id")
    assert (first.status, first.attempts) == (S.RETRYING, 1) and first.next_attempt_at <= timezone.now()
    assert {(r.status, r.attempts) for r in rest} == {(S.QUEUED, 0)}  # untried: back as they were
