"""Issue 16: a server's max_connections holds across two real qcluster processes (two
"machines" on one database), and nothing is sent twice.

The sink counts simultaneous SMTP sessions (connections open at once) and makes every DATA
wait until `max_connections` messages are in DATA together (or a few seconds pass), so the
clusters are driven to the limit: the peak must reach the limit (the clusters really deliver
concurrently) and never pass it (the slots hold across processes)."""

from __future__ import annotations

import asyncio

import pytest

from conftest import Gauge, start_session_counting
from hub.models import ConnectionSlot, SendLog
from tests import test_faults
from tests.faults import CountingHandler, free_port, measure, wait_until
from tests.test_faults import all_in, post_messages, report

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The fault tests' fixtures; the counting sink is asked for first, so it stops after the clusters.
clusters = test_faults.clusters
sinks = test_faults.sinks
S = SendLog.Status
LIMIT = 3


class GatheringHandler(CountingHandler):
    """Holds each DATA until `gather` messages are in DATA at once (at most `wait` seconds),
    then accepts it; counts messages in DATA at once."""

    def __init__(self, gather: int, wait: float = 3.0):
        super().__init__()
        self.gather, self.wait = gather, wait
        self.in_data_gauge = Gauge()

    async def reply(self, arrival, seen_before: int) -> str:
        self.in_data_gauge.up()
        try:
            for _ in range(int(self.wait / 0.02)):
                if self.in_data_gauge.now >= self.gather:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)  # let the others see the full house too
        finally:
            self.in_data_gauge.down()
        return "250 2.0.0 Ok: queued"


class SessionCountingSink:
    """An aiosmtpd server that counts open connections (sessions) at once."""

    username = password = ""

    def __init__(self, handler: CountingHandler):
        self.handler = handler
        self.host, self.port = "127.0.0.1", free_port()
        self.controller, self.sessions = start_session_counting(handler, self.host, self.port)

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def counting_sink():
    started = []

    def start(handler):
        sink = SessionCountingSink(handler)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


def test_max_connections_hold_across_two_qclusters_with_no_duplicates(request, client, counting_sink, clusters,
                                                                       make_server, make_app):
    handler = GatheringHandler(gather=LIMIT)
    sink = counting_sink(handler)
    server = make_server(sink, timeout=10, max_connections=LIMIT)
    provisioned = make_app(server)
    env = {"HUB_DELIVERY_THREADS": "4", "HUB_DELIVERY_BATCH": "8"}
    clusters.start(name="qcluster-a", env=env)
    clusters.start(name="qcluster-b", env=env)
    ids = post_messages(client, provisioned, 40, "concurrent")

    wait_until(lambda: all_in(ids, S.SENT, S.FAILED), 90, "every message delivered", clusters, poll=0.3)
    result = measure(f"two qclusters, max_connections={LIMIT}", ids, [handler],
                     note=f"peak sessions {sink.sessions.peak}, peak in DATA {handler.in_data_gauge.peak}")
    report(request, result)
    assert (result.sent, result.lost, result.duplicates) == (40, 0, 0)
    assert sink.sessions.peak == LIMIT  # reached (both clusters deliver at once), never passed
    assert handler.in_data_gauge.peak == LIMIT
    clusters.stop_all()
    # A stopped cluster gives its connection slots back.
    assert not ConnectionSlot.objects.exclude(holder="").exists()
