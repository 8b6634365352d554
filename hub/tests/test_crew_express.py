"""hub.delivery.crew: a transactional row (priority 0) starts at once even while the sizer's
number of campaign rows are in flight (it never waits for a campaign row to finish)."""

from __future__ import annotations

import threading
import time

from hub.delivery.crew import Crew, Sizer
from hub.models import SendLog


def test_a_transactional_row_starts_while_campaign_rows_fill_the_crew(monkeypatch):
    monkeypatch.setattr(Sizer, "last_active", Sizer.START)
    release = threading.Event()
    started: list[int] = []
    transactional_done = threading.Event()

    def deliver(row, servers):
        started.append(row.id)
        if row.priority:
            assert release.wait(10)  # a campaign row on a slow wire
        else:
            transactional_done.set()
        return True

    crew = Crew(float("inf"), deliver=deliver, size=4)
    crew._servers_of = lambda app_id: []  # no database: the stand-in needs no servers
    try:
        crew.deliver([SendLog(id=i, app_id=1, priority=1) for i in range(1, 7)])
        _wait_until(lambda: len(started) == 4)  # four on the wire, two waiting for a thread
        crew.deliver([SendLog(id=99, app_id=1, priority=0)])
        assert transactional_done.wait(10), f"the transactional row waited behind {started}"
        _wait_until(lambda: 99 not in crew.in_flight)
        assert sorted(crew.in_flight) == [1, 2, 3, 4] and [r.id for r in crew.queue] == [5, 6]
        assert len(crew.threads) == 5  # the four the sizer allows and one for the express lane
    finally:
        release.set()
        crew.finish()
    assert sorted(started) == [1, 2, 3, 4, 5, 6, 99]


def test_transactional_rows_go_ahead_of_campaign_rows_waiting_for_a_thread(monkeypatch):
    monkeypatch.setattr(Sizer, "last_active", Sizer.START)
    crew = Crew(float("inf"), deliver=lambda row, servers: True, size=4)
    crew._spawn = lambda: None  # no threads: look at the queue only
    crew._start_thread = lambda: None
    crew.deliver([SendLog(id=i, app_id=1, priority=1) for i in range(1, 4)])
    crew.deliver([SendLog(id=7, app_id=1, priority=1), SendLog(id=8, app_id=1, priority=0),
                  SendLog(id=9, app_id=1, priority=0)])
    assert [r.id for r in crew.queue] == [8, 9, 1, 2, 3, 7]


def _wait_until(condition) -> None:
    for _ in range(1000):  # up to 10 s
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the crew did not get there in 10 s")


def test_campaign_rows_still_wait_for_the_sizer(monkeypatch):
    monkeypatch.setattr(Sizer, "last_active", Sizer.START)
    release = threading.Event()
    started: list[int] = []

    def deliver(row, servers):
        started.append(row.id)
        assert release.wait(10)
        return True

    crew = Crew(float("inf"), deliver=deliver, size=4)
    crew._servers_of = lambda app_id: []
    try:
        crew.deliver([SendLog(id=i, app_id=1, priority=1) for i in range(1, 7)])
        _wait_until(lambda: len(started) == 4)
        time.sleep(0.2)  # room for a fifth to start, were it allowed to
        assert len(crew.in_flight) == 4 and len(crew.queue) == 2 and len(started) == 4
    finally:
        release.set()
        crew.finish()
    assert sorted(started) == [1, 2, 3, 4, 5, 6]


def test_wait_idle_with_a_timeout_returns_while_rows_are_on_the_wire():
    release = threading.Event()
    crew = Crew(float("inf"), deliver=lambda row, servers: release.wait(10), size=4)
    crew._servers_of = lambda app_id: []
    try:
        crew.deliver([SendLog(id=i, app_id=1, priority=1) for i in (1, 2)])
        assert crew.wait_idle(timeout=0.05) is False
        assert crew.handed_back == 0
    finally:
        release.set()
    assert crew.wait_idle(timeout=10) is True
    crew.finish()
