"""Django's SQLite backend, with a write gate between the hub's processes.

Why: SQLite has one writer at a time. A writer that finds the lock taken sleeps in SQLite's
busy handler, in steps of 1, 2, 5, 10, 15, 20, 25 … ms, whatever the other writer's
transaction takes. With two qcluster workers each committing a group of delivery outcomes
every few milliseconds (hub.delivery.groupcommit), a worker that lost the race slept past
the other's commit, again and again, and its whole crew of delivery threads waited for that
commit (measured: about 2 ms of every BEGIN IMMEDIATE spent sleeping, one process in the
lock while the other slept).

Here every write transaction (Django begins each one with BEGIN IMMEDIATE: see settings)
first takes an exclusive flock(2) on `<database>.writers`, one file descriptor per
connection, and gives it back at its COMMIT or ROLLBACK. Waiting for it is a poll of at most
1 ms between tries, so a writer follows the previous one within a millisecond. It only
orders writers: SQLite's own lock stays the rule. A writer that waited the busy timeout for
the gate goes on to BEGIN without it, so SQLite decides as before ("database is locked"), and
a statement written outside a transaction (autocommit) never takes the gate.
"""

from __future__ import annotations

import fcntl
import os
import time

from django.db.backends.sqlite3 import base


def gate_path(database: str) -> str:
    """The gate's file for a database file."""
    return database + ".writers"


class WriteGate:
    """flock(2) on a file beside the database; one per connection, so threads exclude each
    other too (locks of one open file description do not)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self.held = False

    def acquire(self, timeout: float) -> bool:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + timeout
        pause = 0.0001
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
                continue
            self.held = True
            return True

    def release(self) -> None:
        if self.held:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class DatabaseWrapper(base.DatabaseWrapper):
    _gate: WriteGate | None = None

    @property
    def write_gate(self) -> WriteGate | None:
        """The gate of the database this connection uses now (test set-up renames it)."""
        name = str(self.settings_dict.get("NAME") or "")
        if name in ("", ":memory:") or "mode=memory" in name:
            return None
        path = gate_path(name)
        if self._gate is None or self._gate.path != path:
            if self._gate is not None:
                self._gate.close()
            self._gate = WriteGate(path)
        return self._gate

    def _start_transaction_under_autocommit(self) -> None:
        gate = self.write_gate
        if gate is None or gate.held:
            return super()._start_transaction_under_autocommit()
        gate.acquire(float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5)))
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            gate.release()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._release_gate()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._release_gate()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            if self._gate is not None:
                self._gate.close()

    def _release_gate(self) -> None:
        # Only once SQLite has ended the transaction (or the connection is unusable): the
        # next writer must find SQLite's lock free too.
        if self._gate is not None and (self.connection is None or not self.connection.in_transaction):
            self._gate.release()
