"""The worker command's stop (hub/management/commands/qcluster.py): setting django-q2's stop
event must not hang when a process that waited on it was killed by the same group signal
(Ctrl-C on bin/run left the qcluster blocked in multiprocessing's Event.set for ever)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from types import SimpleNamespace

from hub.management.commands import qcluster


def _wait_on(event) -> None:
    event.wait()


def test_a_waiter_killed_while_waiting_does_not_hang_the_stop():
    ctx = multiprocessing.get_context("fork")
    event = ctx.Event()
    waiter = ctx.Process(target=_wait_on, args=(event,), daemon=True)
    waiter.start()
    deadline = time.monotonic() + 10
    while event._cond._sleeping_count.get_value() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the child sleeps inside Event.wait
    assert event._cond._sleeping_count.get_value() == 1
    os.kill(waiter.pid, signal.SIGKILL)
    waiter.join(5)

    done = threading.Event()
    stopper = threading.Thread(target=lambda: (qcluster._ask_to_stop(SimpleNamespace(stop_event=event), 1.0),
                                               done.set()), daemon=True)
    stopper.start()
    assert done.wait(10), "the stop blocked on the dead waiter"
    # Without the bound, the same call blocks: this is what hung the worker.
    plain = threading.Thread(target=event.set, daemon=True)
    plain.start()
    plain.join(1.0)
    assert plain.is_alive()
