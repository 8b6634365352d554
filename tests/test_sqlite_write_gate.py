"""The SQLite write gate (smtphub/sqlite3): write transactions of all the hub's processes
take turns on flock(2) of `<database>.writers` before BEGIN IMMEDIATE, instead of sleeping
in SQLite's busy handler."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from django.db import connection, transaction

from hub.models import Site
from smtphub.sqlite3.base import WriteGate

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="the gate is SQLite's")

HOLD = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.readline()")


def hold_gate(path: str) -> subprocess.Popen:
    """Another process holding the gate (and not SQLite's lock)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.django_db(transaction=True)
def test_a_write_transaction_waits_for_another_process_holding_the_gate():
    connection.ensure_connection()
    holder = hold_gate(connection.write_gate.path)
    done = threading.Event()

    def write() -> None:
        from django.db import connection as own
        try:
            with transaction.atomic():
                assert own.write_gate.held
                Site.objects.update_or_create(pk=1, defaults={"title": "gated"})
            done.set()
        finally:
            own.close()

    writer = threading.Thread(target=write)
    try:
        writer.start()
        # Without the gate nothing stops it: SQLite's own lock is free.
        assert not done.wait(0.5)
        assert not Site.objects.filter(title="gated").exists()
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    writer.join(timeout=30)
    assert done.is_set()
    assert Site.objects.get(pk=1).title == "gated"


@pytest.mark.django_db(transaction=True)
def test_the_gate_is_given_back_at_commit_and_at_rollback():
    with transaction.atomic():
        Site.objects.update_or_create(pk=1, defaults={"title": "one"})
        assert connection.write_gate.held
    assert not connection.write_gate.held
    with pytest.raises(RuntimeError), transaction.atomic():
        Site.objects.filter(pk=1).update(title="two")
        assert connection.write_gate.held
        raise RuntimeError("rolled back")
    assert not connection.write_gate.held
    assert Site.objects.get(pk=1).title == "one"
    # A nested block (a savepoint) neither takes it again nor gives it back early.
    with transaction.atomic():
        with transaction.atomic():
            Site.objects.filter(pk=1).update(title="three")
        assert connection.write_gate.held
    assert not connection.write_gate.held


@pytest.mark.django_db(transaction=True)
def test_closing_the_connection_gives_the_gate_back():
    # Closed inside its transaction (a worker's connection dropped mid-write): neither a
    # COMMIT nor a ROLLBACK gives the gate back, the close must.
    with transaction.atomic():
        path = connection.write_gate.path
        assert connection.write_gate.held
        connection.close()
        other = WriteGate(path)
        try:
            assert other.acquire(timeout=0)
        finally:
            other.close()


def test_a_gate_held_past_the_timeout_is_not_waited_for_longer(tmp_path):
    # SQLite's busy timeout then decides, as it did without the gate.
    path = str(tmp_path / "db.sqlite3.writers")
    holder = hold_gate(path)
    gate = WriteGate(path)
    try:
        assert gate.acquire(timeout=0.2) is False
        assert not gate.held
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    assert gate.acquire(timeout=5) is True
    gate.close()
    assert not gate.held
