"""A destination's connection limit holds while a drain's crew delivers to it from many
threads at once: the sink counts simultaneous SMTP sessions (open connections, idle pooled
ones included) and holds each DATA until two messages are in DATA together (or a few
seconds pass), so the crew is driven to the limit. Threads need committed rows: this module
runs with a transactional test database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import Gauge, SinkHandler, SmtpSink, start_session_counting
from hub.delivery.outbox import deliver_batch
from hub.models import Destination, DestinationSlot, SendLog

pytestmark = pytest.mark.django_db(transaction=True)
S = SendLog.Status
LIMIT = 2


class GatheringHandler(SinkHandler):
    """Holds each DATA until LIMIT messages are in DATA at once (at most 3 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_data = Gauge()

    async def handle_DATA(self, server, session, envelope):
        self.in_data.up()
        try:
            for _ in range(150):
                if self.in_data.now >= LIMIT:
                    break
                await asyncio.sleep(0.02)
        finally:
            self.in_data.down()
        return await super().handle_DATA(server, session, envelope)


def counting_sink(address: str, port: int, handler: SinkHandler) -> tuple[SmtpSink, Gauge]:
    controller, sessions = start_session_counting(handler, address, port)
    return SmtpSink(address, port, handler, controller), sessions


def test_a_destinations_connection_limit_holds_across_the_crews_threads(world, settings):
    settings.HUB_DELIVERY_THREADS = 8
    Destination.objects.create(name="many.test", domains="many.test", max_connections=LIMIT)
    world.mx("many.test", "10 mx.many.test")
    world.host("mx.many.test", "127.0.0.2")
    sink, sessions = counting_sink("127.0.0.2", world.port, GatheringHandler())
    try:
        rows = [world.send(f"u{i}@many.test", subject=f"m{i}") for i in range(8)]
        ids = [r.pk for r in rows]
        for _round in range(10):  # bounded: rows that found every connection busy wait a moment
            deliver_batch(ids)
            if SendLog.objects.filter(pk__in=ids, status=S.SENT).count() == len(ids):
                break
            SendLog.objects.filter(pk__in=ids, status=S.RETRYING).update(
                next_attempt_at=timezone.now() - timedelta(seconds=1))
        statuses = list(SendLog.objects.filter(pk__in=ids).values_list("status", "attempts"))
        assert statuses == [(S.SENT, 1)] * len(ids)  # waiting for a connection counted no attempt
        assert sorted(m.message["Subject"] for m in sink.messages) == sorted(f"m{i}" for i in range(8))
        assert sessions.peak == LIMIT  # reached (the crew really went in parallel), never passed
        assert DestinationSlot.objects.filter(number__gte=LIMIT).count() == 0
    finally:
        from hub.delivery.transport import pool

        pool.close_all()
        sink.controller.stop()
