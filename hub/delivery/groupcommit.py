"""Group commit: the outcome writes of a process's delivery threads, several in one transaction.

Why: every delivered row ends with a short write transaction (hub.delivery.attempt._finish:
the claim-token UPDATE, its attempts, the events' counters and outbox rows). With a crew of
16 threads those transactions queue for the database's write lock; on SQLite a waiting
thread sleeps in the busy handler's coarse steps (up to 100 ms) and a py-spy profile of a
20,000-recipient campaign showed the crew spending 28 % of its samples in BEGIN IMMEDIATE.
Here the first thread to arrive while no commit runs becomes the leader: it takes every
outcome waiting at that moment and writes them all in one transaction, on its own
connection; the others wait for it and return their own job's result. Under load a commit
so carries as many outcomes as arrived during the previous one; alone, a thread commits its
own at once (no timer, no added latency).

Only on SQLite, where one writer at a time is the rule anyway. With row locks (MariaDB) each
outcome keeps a transaction of its own, run again when InnoDB picks it as a deadlock's victim.

Nothing about crash safety changes: a thread returns only after its outcome is committed,
so a killed worker still repeats at most the rows on the wire or waiting here (one per
thread). If one job raises, the batch is rolled back and each of its jobs runs again in a
transaction of its own, so one row's trouble is that row's alone (as before)."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import OperationalError, connection, transaction

log = logging.getLogger(__name__)

# Attempts of one outcome transaction that lost a deadlock (MariaDB).
RETRIES = 4


class _Ticket:
    __slots__ = ("committed", "done", "error", "job", "value")

    def __init__(self, job: Callable[[], Any]) -> None:
        self.job = job
        self.done = False
        self.committed = False
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class GroupCommit:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._leading = False
        self.batches = 0  # commits made, and the jobs they carried (for tests and benches)
        self.jobs = 0

    def run(self, job: Callable[[], Any]) -> Any:
        """Run `job` (database writes, no network) in a transaction shared with the jobs of
        other threads arriving meanwhile; return its result once committed, or raise its error.
        Inside an open transaction (a test, a caller's atomic block) it runs there, alone."""
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():
                return job()
        ticket = _Ticket(job)
        if connection.vendor != "sqlite":
            # Row locks, many writers: each outcome in a transaction of its own (a shared one
            # would take its counter rows' locks in a different order in each process, and
            # deadlock: measured, 414 deadlocks in a 5,000-recipient campaign on MariaDB).
            _alone(ticket)
            return ticket.result()
        with self._cond:
            self._waiting.append(ticket)
            while self._leading and not ticket.done:
                self._cond.wait()
            if ticket.done:
                return ticket.result()
            batch, self._waiting = self._waiting, []
            self._leading = True
        try:
            self._commit(batch)
        except BaseException as exc:
            # The leading thread itself was stopped (WorkerStopping in an inline delivery):
            # whatever of the batch is not known to be committed is not, for its owners too.
            for waiting in batch:
                if not waiting.committed and waiting.error is None:
                    waiting.error = exc
            raise
        finally:
            self._release(batch)
        return ticket.result()

    def _release(self, batch: list[_Ticket], committed: bool = False) -> None:
        """The batch's owners may go on (once per batch); the next leader may start."""
        with self._cond:
            if batch[0].done:
                return
            for waiting in batch:
                waiting.committed = waiting.committed or committed
                waiting.done = True
            self._leading = False
            self.batches += 1
            self.jobs += len(batch)
            self._cond.notify_all()

    def _commit(self, batch: list[_Ticket]) -> None:
        if len(batch) > 1:
            try:
                with transaction.atomic():
                    # First of the on-commit hooks: the owners go on as soon as the batch is
                    # committed, not after the hooks the jobs registered (a campaign's top-up
                    # slice, hub.campaigns.topup), which then run in this thread.
                    transaction.on_commit(functools.partial(self._release, batch, True))
                    for ticket in batch:
                        ticket.value = ticket.job()
                return
            except Exception as exc:
                if batch[0].committed:
                    # Committed; a hook after the commit raised (as it would have in its own
                    # thread): nothing to run again.
                    log.exception("an on-commit hook of a group commit of %d outcomes failed", len(batch))
                    return
                # Not lost: each job runs again alone below, and the one that fails again
                # raises in its own thread (hub.delivery.attempt.deliver_row records it).
                log.info("a group commit of %d outcomes failed (%s: %s); committing each alone",
                         len(batch), type(exc).__name__, exc)
        for ticket in batch:
            _alone(ticket)


def _alone(ticket: _Ticket) -> None:
    """Run one job in a transaction of its own, again after a deadlock."""
    for attempt in range(1, RETRIES + 1):
        ticket.value, ticket.error = None, None
        try:
            with transaction.atomic():
                ticket.value = ticket.job()
            ticket.committed = True
            return
        except OperationalError as exc:
            ticket.error = exc
            if not _lock_conflict(exc) or attempt == RETRIES:
                return
            # InnoDB chose this transaction as a deadlock's victim (or a lock wait ran out):
            # it was rolled back whole, so running it again is safe.
            log.info("outcome transaction %s (%s); trying again",
                     "deadlocked" if exc.args[0] == 1213 else "timed out waiting for a lock", exc)
            time.sleep(0.02 * attempt)
        except Exception as exc:  # noqa: BLE001 - the job's owner raises it (GroupCommit.run)
            ticket.error = exc
            return


def _lock_conflict(exc: OperationalError) -> bool:
    """MySQL/MariaDB's deadlock (1213) and lock wait timeout (1205)."""
    return connection.vendor == "mysql" and bool(exc.args) and exc.args[0] in (1205, 1213)


# One per process: the delivery threads of every crew in it share it.
outcomes = GroupCommit()
