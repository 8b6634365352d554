"""Connection slots (hub.delivery.slots): at most max_connections held at once, a lease that
ran out is taken over, a dead cluster's slots are freed with its rows, and the pool waits
for (or gives up on) a connection when all are taken."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from hub.delivery import lease, slots
from hub.delivery.transport import NoConnectionSlot, pool
from hub.models import ConnectionSlot, WorkerCluster


@pytest.fixture
def server(make_server, smtp_sink):
    return make_server(smtp_sink, max_connections=2)


def test_no_more_than_max_connections_are_held(server):
    first, second = slots.acquire(server, "a-1"), slots.acquire(server, "b-1")
    assert (first.number, second.number) == (0, 1)
    assert slots.acquire(server, "c-1") is None
    slots.release(first)
    third = slots.acquire(server, "c-1")
    assert third.number == 0
    assert slots.open_connections([server.pk]) == {server.pk: 2}


def test_an_expired_lease_is_taken_over_and_its_holder_cannot_renew(server):
    stale = slots.acquire(server, "dead-1")
    slots.acquire(server, "live-1")
    ConnectionSlot.objects.filter(pk=stale.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = slots.acquire(server, "new-1")
    assert taken.number == stale.number
    assert slots.renew(stale) is False  # the killed worker's connection no longer counts
    assert slots.renew(taken) is True
    slots.release(stale)  # a late release by the old holder frees nothing
    assert slots.open_connections([server.pk]) == {server.pk: 2}


def test_lowering_max_connections_ignores_higher_slots(server):
    slots.acquire(server, "a-1")
    slots.acquire(server, "b-1")
    server.max_connections = 1
    assert slots.acquire(server, "c-1") is None


def test_a_dead_clusters_slots_are_freed_when_its_rows_are_rescued(server, monkeypatch):
    monkeypatch.setattr(lease, "CLUSTER_ID", "")
    now = timezone.now()
    WorkerCluster.objects.create(id="deadbeef0001", host="elsewhere", pid=1, started_at=now,
                                 beat_at=now - timedelta(days=1))
    slots.acquire(server, "deadbeef0001-abc")
    slots.acquire(server, "alive0000001-abc")
    lease.rescue_lost()
    assert list(ConnectionSlot.objects.exclude(holder="").values_list("holder", flat=True)) == ["alive0000001-abc"]


def test_the_pool_gives_up_when_every_connection_is_taken(server):
    slots.acquire(server, "other-1")
    session = pool.get(server)  # the second slot
    assert session.slot.number == 1
    with pytest.raises(NoConnectionSlot):
        pool.get(server, wait=0.3)
    pool.put(session)
    assert pool.get(server, wait=0) is session  # checked back in: reused, no new slot
    pool.discard(session)  # closing it frees its slot
    assert slots.open_connections([server.pk]) == {server.pk: 1}


def test_a_thread_waiting_for_one_of_its_own_processes_connections_does_not_ask_the_database(server, monkeypatch):
    held = [pool.get(server), pool.get(server)]  # this process holds both of the server's connections
    asked = []
    real_acquire = slots.acquire
    monkeypatch.setattr(slots, "acquire", lambda *a, **kw: asked.append(a) or real_acquire(*a, **kw))
    with pytest.raises(NoConnectionSlot):
        pool.get(server, wait=0.3)
    assert asked == []  # no slot can be free anywhere: no write transaction to find that out
    pool.put(held[0])
    assert pool.get(server, wait=0) is held[0]
    for session in held:
        pool.discard(session)
    assert slots.open_connections([server.pk]) == {}


def test_a_session_coming_back_goes_to_the_urgent_caller_first(make_server, smtp_sink):
    import threading
    import time

    server = make_server(smtp_sink, max_connections=1)
    session = pool.get(server)
    got: dict[str, object] = {}

    def wait_for_one(name: str, bulk: bool) -> None:
        try:
            got[name] = pool.get(server, wait=5, bulk=bulk)
        except NoConnectionSlot as exc:
            got[name] = exc

    campaign = threading.Thread(target=wait_for_one, args=("campaign", True))
    campaign.start()
    time.sleep(0.1)  # the campaign thread waits first
    transactional = threading.Thread(target=wait_for_one, args=("transactional", False))
    transactional.start()
    for _ in range(500):  # up to 5 s for it to be counted as waiting
        if pool._urgent.get(server.id):
            break
        time.sleep(0.01)
    pool.put(session)
    transactional.join(5)
    assert got.get("transactional") is session and "campaign" not in got
    pool.put(session)  # the transactional message is done: now the campaign thread's turn
    campaign.join(5)
    assert got["campaign"] is session
    pool.discard(session)


def test_campaign_mail_leaves_the_last_connection_to_transactional_mail(server):
    """max_connections 2: bulk callers (campaign rows) hold at most 1; the last slot, in any
    worker, is for transactional mail, and its session, once idle, is not handed to bulk."""
    bulk = pool.get(server, bulk=True)
    assert bulk.slot.number == 0
    with pytest.raises(NoConnectionSlot):
        pool.get(server, wait=0.3, bulk=True)
    reserved = pool.get(server)  # transactional: the reserved lane
    assert reserved.slot.number == 1
    pool.put(reserved)
    # Campaign mail flows here: not kept idle but closed, so its slot is free for any worker's
    # next transactional message (without campaign mail it is kept: the test above).
    assert not reserved.is_open and slots.open_connections([server.pk]) == {server.pk: 1}
    with pytest.raises(NoConnectionSlot):
        pool.get(server, wait=0.3, bulk=True)  # still not for bulk
    again = pool.get(server, wait=0)
    assert again.slot.number == 1
    pool.put(bulk)
    assert pool.get(server, wait=0, bulk=True) is bulk
    for session in (bulk, again):
        pool.discard(session)
    assert slots.open_connections([server.pk]) == {}


def test_another_workers_bulk_sessions_leave_the_reserved_slot_free(server):
    slots.acquire(server, "otherworker-1", limit=1)  # a campaign session of another worker
    assert slots.acquire(server, "otherworker-2", limit=1) is None  # its second bulk one: refused
    session = pool.get(server, wait=0)  # transactional mail here: the last slot is free
    assert session.slot.number == 1
    pool.discard(session)


def test_threads_waiting_for_a_busy_server_do_not_each_ask_the_database(make_server, smtp_sink, monkeypatch):
    """Six threads share the two connections this process holds; another worker holds the
    server's other two. A session coming back wakes one waiting thread, and a thread asks the
    database for a slot at most once per SLOT_POLL_SECONDS per process. (It woke every
    waiting thread, and each urgent one asked: ~5 write transactions per message, 6.6 ms of
    CPU per message in the bench at --max-connections 10.)"""
    import threading
    import time

    server = make_server(smtp_sink, max_connections=4)
    held = [pool.get(server), pool.get(server)]
    asked = []
    # The other worker keeps its two slots: every look at the database finds none free.
    monkeypatch.setattr(slots, "acquire", lambda *a, **kw: asked.append(a) or None)
    for session in held:
        pool.put(session)
    done = []

    def churn() -> None:
        for _ in range(10):
            session = pool.get(server, wait=20)
            time.sleep(0.002)  # "on the wire"
            pool.put(session)
        done.append(1)

    threads = [threading.Thread(target=churn) for _ in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    elapsed = time.monotonic() - started
    assert len(done) == 6  # 60 messages over the two sessions
    assert len(asked) <= elapsed / 0.2 + 6, (len(asked), elapsed)  # not ~5 per check-in
    for session in held:
        pool.discard(session)
