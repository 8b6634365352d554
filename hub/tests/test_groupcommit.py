"""hub.delivery.groupcommit: outcomes of several delivery threads in one transaction, each
thread's own result or error given back to it, one job's failure confined to that job."""

from __future__ import annotations

import threading
import time

import pytest
from django import db
from django.contrib.auth.models import Group
from django.db import connection

from hub.delivery.groupcommit import GroupCommit

pytestmark = pytest.mark.django_db(transaction=True)


def _run_threads(gc: GroupCommit, jobs: list, first_started: threading.Event, release_first: threading.Event,
                 results: dict[int, object] | None = None):
    """Thread 0 runs jobs[0] (which blocks until released); the others queue behind it."""
    results = {} if results is None else results

    def worker(i: int) -> None:
        try:
            results[i] = gc.run(jobs[i])
        except Exception as exc:  # noqa: BLE001 - the test looks at what each thread got
            results[i] = exc
        finally:
            db.connections.close_all()

    threads = [threading.Thread(target=worker, args=(0,))]
    threads[0].start()
    assert first_started.wait(10)
    for i in range(1, len(jobs)):
        threads.append(threading.Thread(target=worker, args=(i,)))
        threads[-1].start()
    deadline = time.monotonic() + 10
    while len(gc._waiting) < len(jobs) - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(gc._waiting) == len(jobs) - 1, "the other threads did not queue behind the first commit"
    release_first.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    return results


def _creating(name: str):
    def job():
        return Group.objects.create(name=name).pk
    return job


sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="outcomes are grouped on SQLite only "
                                 "(MariaDB: one transaction each, see test_with_row_locks_each_job_commits_alone)")


@sqlite_only
def test_jobs_arriving_during_a_commit_share_the_next_one():
    gc = GroupCommit()
    started, release = threading.Event(), threading.Event()

    def first():
        started.set()
        assert release.wait(10)
        return Group.objects.create(name="g0").pk

    results = _run_threads(gc, [first] + [_creating(f"g{i}") for i in range(1, 8)], started, release)

    assert (gc.batches, gc.jobs) == (2, 8)  # the first alone, then the seven that waited, together
    assert sorted(Group.objects.values_list("name", flat=True)) == sorted(f"g{i}" for i in range(8))
    assert {results[i] for i in range(8)} == set(Group.objects.values_list("pk", flat=True))


@sqlite_only
def test_the_owners_go_on_once_committed_while_the_hooks_run_in_the_leader():
    """A job's on-commit hook (a campaign's top-up slice) runs after the batch commits in the
    leading thread; the other owners of the batch do not wait for it."""
    from django.db import transaction

    gc = GroupCommit()
    started, release, hook_go = threading.Event(), threading.Event(), threading.Event()
    results: dict[int, object] = {}
    seen_while_hook_ran: list[int] = []

    def first():
        started.set()
        assert release.wait(10)

    def hooked():
        Group.objects.create(name="hooked")
        transaction.on_commit(lambda: hook_go.wait(10))
        return "hooked"

    def watch():
        for _ in range(500):  # up to 5 s for the first and one owner of the second batch
            if len(results) >= 2:
                break
            time.sleep(0.01)
        seen_while_hook_ran.append(len(results))
        hook_go.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    _run_threads(gc, [first, hooked, _creating("plain")], started, release, results)
    watcher.join(10)
    assert seen_while_hook_ran == [2]  # the batch's other owner returned while the hook still ran
    assert (gc.batches, gc.jobs) == (2, 3)
    assert results[1] == "hooked" and results[2] == Group.objects.get(name="plain").pk


@sqlite_only
def test_a_failing_job_fails_alone_and_its_writes_are_rolled_back():
    gc = GroupCommit()
    started, release = threading.Event(), threading.Event()

    def first():
        started.set()
        assert release.wait(10)

    def failing():
        Group.objects.create(name="half-done")
        raise ValueError("this row's trouble")

    jobs = [first, _creating("a"), failing, _creating("b")]
    results = _run_threads(gc, jobs, started, release)

    assert isinstance(results[2], ValueError) and str(results[2]) == "this row's trouble"
    assert sorted(Group.objects.values_list("name", flat=True)) == ["a", "b"]
    assert results[1] == Group.objects.get(name="a").pk and results[3] == Group.objects.get(name="b").pk


def test_a_stopped_leader_fails_the_jobs_it_had_not_committed():
    gc = GroupCommit()

    class Stop(BaseException):
        pass

    def stopped():
        Group.objects.create(name="never")
        raise Stop()

    with pytest.raises(Stop):
        gc.run(stopped)
    assert not Group.objects.exists()
    assert gc.run(_creating("after")) == Group.objects.get(name="after").pk  # not stuck leading


def test_inside_a_transaction_the_job_runs_there():
    gc = GroupCommit()
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        gc.run(_creating("inner"))
        assert Group.objects.filter(name="inner").exists()  # in the caller's transaction
        raise RuntimeError("the caller rolls back")
    assert not Group.objects.exists()
    assert gc.batches == 0


def test_a_deadlock_victim_runs_again_and_other_errors_do_not(monkeypatch):
    from django.db import OperationalError

    from hub.delivery import groupcommit

    monkeypatch.setattr(groupcommit, "_lock_conflict", lambda exc: exc.args[0] == 1213)
    monkeypatch.setattr(groupcommit.time, "sleep", lambda s: None)
    tries = []

    def deadlocked_once():
        tries.append(1)
        Group.objects.create(name=f"try{len(tries)}")
        if len(tries) == 1:
            raise OperationalError(1213, "Deadlock found when trying to get lock")
        return "ok"

    assert GroupCommit().run(deadlocked_once) == "ok"
    assert list(Group.objects.values_list("name", flat=True)) == ["try2"]  # the first was rolled back

    def broken():
        tries.append(1)
        raise OperationalError(1146, "no such table")

    tries.clear()
    with pytest.raises(OperationalError):
        GroupCommit().run(broken)
    assert len(tries) == 1


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite groups them (tests above)")
def test_with_row_locks_each_job_commits_alone():
    """MariaDB: two threads' outcome transactions run at once, neither waits for the other's
    (a grouped transaction would take its counter rows' locks in varying order: deadlocks)."""
    gc = GroupCommit()
    inside, release = threading.Barrier(2, timeout=10), threading.Event()
    errors = []

    def job(name):
        def run():
            Group.objects.create(name=name)
            inside.wait()  # both in their own transaction at the same time
            return name
        return run

    def worker(name):
        try:
            assert gc.run(job(name)) == name
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db.connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("x", "y")]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(15)
    assert errors == [] and gc.batches == 0
    assert sorted(Group.objects.values_list("name", flat=True)) == ["x", "y"]
