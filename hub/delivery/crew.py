"""The delivery crew of one drain: up to HUB_DELIVERY_THREADS threads, each delivering one
claimed row at a time over its own checked-out SMTP session, so one worker process keeps many
messages in flight (a server 30 ms away costs a thread its round trips, not the worker).

Why threads and not asyncio: each row's delivery (hub.delivery.attempt: servers in turn,
throttle, MIME build, the claim-token guarded outcome write) stays the same synchronous code,
smtplib included, and each thread has its own Django database connection (closed when the
thread ends). The work between round trips is CPU (building the MIME, the outcome write),
which neither model runs in parallel within one process; threads wait on sockets with the GIL
released, which is all the concurrency a distant server needs. Per-server limits are the
pool's (hub.delivery.slots): a thread waits for a free connection of its server.

Crash semantics are unchanged: every row's outcome is written on its own, guarded by its
claim token, as soon as its server answered; a killed worker can repeat only the rows on the
wire (at most one per thread). On SIGTERM (WorkerStopping, raised in the main thread) the
rows on the wire count as an attempt and are due at once, untried rows go back to the queue.

How many threads: the Sizer below climbs from 4 towards HUB_DELIVERY_THREADS while more
sessions raise the rate (a distant server) and stops where they do not (a near one).

Inside an open transaction (tests, or a caller's atomic block) rows are delivered in the
calling thread: another thread's connection could not see the uncommitted rows. A lone row
with nothing else in flight is delivered in the calling thread too (a transactional message
pays no thread start)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from django import db
from django.conf import settings
from django.db import transaction

from ..models import SendLog, SmtpServer
from .attempt import abandon, abandon_rows, deliver_row, hand_back_untried
from .chain import Chain
from .policy import servers_in_order

log = logging.getLogger(__name__)

# The sizer measures the crew's rate over windows of at least this many rows and seconds.
WINDOW_ROWS = 24
WINDOW_SECONDS = 0.25


class Sizer:
    """How many rows a crew keeps in flight: start small, grow by half while each step raises
    the measured rate by 10% or more, and step back (and stop growing) when one did not.

    Why: more sessions help only while the crew waits on the network. Against a server on the
    same machine the work is CPU, and every extra thread costs CPU in GIL hand-offs and
    database lock waits (measured with bench/inprocess.py: 1.37 ms of CPU per message with 4
    threads, 2.25 ms with 16); against a server 30 ms away 16 sessions deliver ~4x what 4 do.
    The crew climbs to what pays, up to HUB_DELIVERY_THREADS (and a server's max_connections
    stops the climb by itself: a thread waiting for a connection adds no rate)."""

    START = 4
    GAIN = 1.10
    # Where this process's last crew ended: the next drain starts there (a busy worker's
    # drains follow each other every HUB_BATCH_TIME_BUDGET_SECONDS; each climbing from 4
    # again would lose a second or two at every hand-over).
    last_active = START

    def __init__(self, size: int) -> None:
        self.size = size
        self.active = min(size, max(self.START, Sizer.last_active))
        self.growing = self.active < size
        self._before: tuple[int, float] | None = None  # (active, rate) before the last step up

    def observe(self, rate: float) -> int:
        """The rate (rows/s) measured at the current size; returns the size to use next."""
        if not self.growing:
            return self.active
        if self._before is not None and rate < self._before[1] * self.GAIN:
            # The last step did not pay: back to where it was, and stay.
            self.active, self.growing = self._before[0], False
        else:
            self._before = (self.active, rate)
            self.active = min(self.size, self.active + max(1, self.active // 2))
            self.growing = self.active < self.size
        Sizer.last_active = self.active
        return self.active


class Crew:
    def __init__(self, deadline: float, deliver: Callable[..., bool] = deliver_row,
                 size: int | None = None, chains: bool | None = None) -> None:
        self.deadline = deadline
        self.deliver_row = deliver  # hub.delivery.attempt.deliver_row (tests may stand in for it)
        # No more threads than a claimed batch has rows: a drain then never holds claimed rows
        # waiting for a thread beyond one batch (HUB_DELIVERY_BATCH=1 is one row at a time).
        self.size = max(1, size if size is not None else min(settings.HUB_DELIVERY_THREADS,
                                                             settings.HUB_DELIVERY_BATCH))
        self.inline = self.size == 1 or transaction.get_connection().in_atomic_block
        # Threads pipeline the queue's next row behind the one they deliver (hub.delivery.chain):
        # `deliver` then takes the thread's chain as a third argument.
        self.chains = chains if chains is not None else (deliver is deliver_row and settings.HUB_SMTP_PIPELINE_NEXT)
        # One lock, two conditions: idle threads wait for `work`, the caller waits for
        # `progress` (a row done); each wakes only its own waiters.
        self.cond = threading.Lock()
        self.work = threading.Condition(self.cond)
        self.progress = threading.Condition(self.cond)
        self.queue: deque[SendLog] = deque()
        self.in_flight: dict[int, SendLog] = {}
        self.ahead = 0  # of those, rows a chain took whose thread is still on the row before
        self.threads: list[threading.Thread] = []
        self.idle_threads = 0
        self.sizer = Sizer(self.size)
        self._window_start, self._window_done = time.perf_counter(), 0
        self.closing = False
        self.stopping = False
        self.handed_back = 0  # rows that went back to the queue untried
        self.failed: BaseException | None = None
        # Each app's servers are read once per drain: an admin's change applies to the next.
        self._servers: dict[int, list[SmtpServer]] = {}

    # -- the caller's side ------------------------------------------------------------------
    def deliver(self, rows: list[SendLog]) -> None:
        """Hand claimed rows to the crew (returns at once unless delivering inline)."""
        if self.inline or (len(rows) == 1 and not self.threads):
            self.queue.extend(rows)  # so that stop() finds the untried ones
            while self.queue:
                self._one(self.queue.popleft())
            return
        with self.cond:
            # Transactional rows (priority 0) go ahead of the campaign rows waiting for a
            # thread, and may start beyond the sizer's number (see _run): the express lane.
            urgent = [row for row in rows if not row.priority]
            self.queue.extend(row for row in rows if row.priority)
            self.queue.extendleft(reversed(urgent))
            self._spawn()
            if urgent and self.idle_threads < len(urgent):
                self._start_thread()  # one more thread, at most
            self.work.notify(len(rows))

    def wait_backlog_below(self, n: int, timeout: float | None = None) -> bool:
        """Wait until fewer than n rows are waiting for a thread (True), or `timeout` passed."""
        until = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while len(self.queue) >= n and self._alive():
                left = 0.5 if until is None else min(0.5, until - time.monotonic())
                if left <= 0:
                    return False
                self.progress.wait(left)
            return True

    def hand_back_campaign_rows(self) -> int:
        """Campaign rows (priority > 0) not started yet go back to the queue: a transactional
        row is waiting behind them, and the drain's next claim takes it first."""
        with self.cond:
            back = [row for row in self.queue if row.priority]
            if not back:
                return 0
            self.queue = deque(row for row in self.queue if not row.priority)
            self.handed_back += len(back)
        hand_back_untried(back)
        return len(back)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every row handed in is done (True; rows the threads did not start go
        back to the queue), or `timeout` passed (False)."""
        until = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while (self.queue or self.in_flight) and self._alive():
                left = 0.5 if until is None else min(0.5, until - time.monotonic())
                if left <= 0:
                    return False
                self.progress.wait(left)
        self._hand_back_leftovers()
        return True

    def finish(self) -> None:
        """Wait for every row, end the threads (they close their database connections)."""
        self.wait_idle()
        with self.cond:
            self.closing = True
            self.work.notify_all()
        for thread in self.threads:
            thread.join()
        if self.failed is not None:
            raise self.failed

    def stop(self) -> None:
        """The worker is stopping (SIGTERM): the rows on the wire may have reached their
        server, so they count as an attempt but are due at once; untried rows go back to the
        queue as they were. The threads are daemons and die with the process."""
        with self.cond:
            self.stopping = True
            on_wire, untried = list(self.in_flight.values()), list(self.queue)
            self.queue.clear()
        try:
            abandon_rows(on_wire, "the worker delivering this message stopped", retry_now=True)
            hand_back_untried(untried)
        except Exception:
            log.exception("could not hand back %d claimed rows; the next worker's rescue will",
                          len(on_wire) + len(untried))

    def abandon_all(self) -> None:
        """Something failed in the caller: no new rows start, untried ones go back to the
        queue, the ones on the wire finish (their threads record them)."""
        with self.cond:
            self.stopping = True
            untried = list(self.queue)
            self.queue.clear()
            self.closing = True
            self.work.notify_all()
        try:
            hand_back_untried(untried)
        except Exception:
            log.exception("could not hand back %d claimed rows; the sweeper will", len(untried))
        for thread in self.threads:
            thread.join(timeout=settings.HUB_BATCH_TIME_BUDGET_SECONDS)

    # -- inside -------------------------------------------------------------------------------
    def _spawn(self) -> None:
        """Start threads up to what the rows and the sizer allow (the lock is held)."""
        wanted = min(self.sizer.active, len(self.queue) + len(self.in_flight))
        while len(self.threads) < wanted and self.idle_threads < len(self.queue):
            self._start_thread()

    def _start_thread(self) -> None:
        if len(self.threads) > self.size:
            return  # the express lane's one thread is there already
        thread = threading.Thread(target=self._run, name=f"delivery-{len(self.threads) + 1}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _done_one(self) -> None:
        """A row is finished (the lock is held): measure the rate over a window of rows and
        let the sizer change the number of rows in flight."""
        self._window_done += 1
        elapsed = time.perf_counter() - self._window_start
        if self._window_done >= WINDOW_ROWS and elapsed >= WINDOW_SECONDS:
            before = self.sizer.active
            rate = self._window_done / elapsed
            self.sizer.observe(rate)
            if self.sizer.active != before:
                log.debug("delivery crew: %d rows in flight gave %.0f rows/s; now %d", before, rate, self.sizer.active)
            self._window_start, self._window_done = time.perf_counter(), 0
            if self.sizer.active > before:
                self._spawn()
                self.work.notify(self.sizer.active - before)

    def _alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def _hand_back_leftovers(self) -> None:
        """Rows the threads did not start (past the deadline) go back to the queue."""
        with self.cond:
            left = list(self.queue)
            self.queue.clear()
        if left:
            hand_back_untried(left)
            self.handed_back += len(left)

    def _servers_of(self, app_id: int) -> list[SmtpServer]:
        servers = self._servers.get(app_id)
        if servers is None:
            servers = self._servers[app_id] = servers_in_order(app_id)
        return servers

    def _one(self, row: SendLog) -> None:
        """Deliver one row in the calling thread (inline mode)."""
        if self.stopping or time.monotonic() > self.deadline:
            # Slow servers: hand the rest back before the task's hard time limit.
            hand_back_untried([row])
            self.handed_back += 1
            return
        self.in_flight[row.id] = row  # on the wire: stop() finds it here if SIGTERM comes now
        try:
            if not self.deliver_row(row, self._servers_of(row.app_id)):
                self.handed_back += 1
        except Exception:
            self.in_flight.pop(row.id, None)
            abandon(row)  # deliver_row records its own failures; this is the servers' query
            raise
        self.in_flight.pop(row.id, None)

    def _take_next(self, wanted: Callable[[SendLog, list[SmtpServer]], bool]) -> SendLog | None:
        """The queue's head row for a thread's chain (hub.delivery.chain), if `wanted` with
        the app's servers (as read already: no query under the lock); now in flight, but not
        counted against the sizer's number until its thread moves on to it (`_move_on`)."""
        with self.cond:
            if not self.queue or self.stopping or self.closing or time.monotonic() > self.deadline:
                return None
            row = self.queue[0]
            servers = self._servers.get(row.app_id)
            if servers is None or not wanted(row, servers):
                return None
            self.queue.popleft()
            self.in_flight[row.id] = row
            self.ahead += 1
            return row

    def _give_back(self, row: SendLog) -> None:
        """A row `_take_next` gave that could not follow: back where it was in the queue
        (behind transactional rows queued meanwhile, if it is a campaign row), or, when the
        crew is stopping, back to the outbox."""
        with self.cond:
            self.in_flight.pop(row.id, None)
            self.ahead -= 1
            if not self.stopping:
                at = next((i for i, r in enumerate(self.queue) if r.priority), len(self.queue)) if row.priority else 0
                self.queue.insert(at, row)
                self.work.notify()
                return
        self._hand_back_ahead(row)

    def _move_on(self, chain: Chain) -> SendLog | None:
        """The row this thread takes next: the one its chain sent the envelope of, if any.
        When the crew is stopping, that row is not delivered: its session closes and it goes
        back to the outbox (unless stop() already counted it as on the wire)."""
        row = chain.next_row()
        if row is None:
            return None
        with self.cond:
            self.ahead -= 1
            stopping = self.stopping
        if not stopping:
            return row
        try:
            chain.claim_ahead(row).drop()
        finally:
            with self.cond:
                self.in_flight.pop(row.id, None)
                self.progress.notify()
            self._hand_back_ahead(row)
        return None

    def _hand_back_ahead(self, row: SendLog) -> None:
        # Its content never left: back as it was. (After stop(), which counted it as on the
        # wire and re-queued it itself, this matches nothing: the claim token is gone.)
        try:
            hand_back_untried([row])
        except Exception:
            log.exception("could not hand back SendLog %s; the sweeper will", row.id)

    def _run(self) -> None:
        try:
            while True:
                with self.cond:
                    self.idle_threads += 1
                    # A thread takes a row only while fewer than the sizer's number are in flight
                    # (rows taken ahead by a chain not counted), except a transactional row
                    # (priority 0): it never waits for campaign rows.
                    while not self.closing and (not self.queue or (len(self.in_flight) - self.ahead >= self.sizer.active
                                                                   and self.queue[0].priority)):
                        self.work.wait()
                    self.idle_threads -= 1
                    if not self.queue or self.stopping or time.monotonic() > self.deadline:
                        return  # closing, or the rows left are handed back by the caller
                    row = self.queue.popleft()
                    self.in_flight[row.id] = row
                chain = Chain(self._take_next, self._give_back) if self.chains else None
                while row is not None:
                    self._deliver_in_thread(row, chain)
                    row = self._move_on(chain) if chain is not None else None
        finally:
            with self.cond:
                self.progress.notify()
            db.connections.close_all()  # this thread's own connections

    def _deliver_in_thread(self, row: SendLog, chain: Chain | None) -> None:
        try:
            delivered = (self.deliver_row(row, self._servers_of(row.app_id), chain) if chain is not None
                         else self.deliver_row(row, self._servers_of(row.app_id)))
            if not delivered:
                with self.cond:
                    self.handed_back += 1
        except Exception as exc:
            # Only the servers' query can get here (deliver_row records its own).
            log.exception("delivery thread failed on SendLog %s", row.id)
            abandon(row)
            self.failed = exc
        finally:
            with self.cond:
                self.in_flight.pop(row.id, None)
                self._done_one()
                self.work.notify()  # a thread held back by the sizer may go on
                self.progress.notify()  # only the caller waits for progress
