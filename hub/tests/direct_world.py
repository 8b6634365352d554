"""Fixtures of the direct-delivery tests (registered in hub/tests/conftest.py): recipient
domains whose MX records, on the test DNS server (root conftest `dns_server`), point at SMTP
sinks bound to distinct loopback addresses (127.0.0.2, 127.0.0.3, ...) on one port, which
HUB_DIRECT_PORT then names; a direct server and an app that uses it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from conftest import SinkHandler, SmtpSink, free_port
from hub.delivery import destinations, mta_sts, mx
from hub.delivery.outbox import deliver_batch
from hub.models import SendLog
from hub.sending import SendRequest, accept

SENDER = "news@sender.test"


class GreylistHandler(SinkHandler):
    """Answers MAIL with `reply` for the first `times` transactions, then accepts."""

    def __init__(self, times: int, reply: str = "421 4.7.0 Too many connections, try again later") -> None:
        super().__init__()
        self.times, self.reply, self.refused_count = times, reply, 0
        self.count_lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.count_lock:
            if self.refused_count < self.times:
                self.refused_count += 1
                return self.reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


@dataclass
class World:
    dns: object
    factory: object
    port: int
    server: object
    app: object
    sinks: dict[str, SmtpSink] = field(default_factory=dict)

    def sink(self, address: str, mode: str = "plain", handler: SinkHandler | None = None,
             refuse: dict | None = None) -> SmtpSink:
        """An SMTP sink on `address`:HUB_DIRECT_PORT."""
        sink = self.factory(mode, host=address, port=self.port, handler=handler, refuse=refuse)
        self.sinks[address] = sink
        return sink

    def host(self, name: str, *addresses: str) -> None:
        self.dns.set(name, "A", *addresses)

    def mx(self, domain: str, *records: str) -> None:
        """MX records of `domain`, e.g. "10 mx1.example.net"."""
        self.dns.set(domain, "MX", *records)

    def domain(self, domain: str, address: str, **sink_options) -> SmtpSink:
        """`domain` with one MX host (mx.<domain>) at `address`, and a sink there."""
        self.mx(domain, f"10 mx.{domain}")
        self.host(f"mx.{domain}", address)
        return self.sink(address, **sink_options)

    def send(self, to: str, subject: str = "直发 test", **fields) -> SendLog:
        return accept(self.app, SendRequest(to=to, subject=subject, message="<p>你好</p>", **fields))

    @staticmethod
    def deliver(*rows: SendLog) -> list[SendLog]:
        deliver_batch([row.id for row in rows])
        return [SendLog.objects.get(pk=row.id) for row in rows]


def build_world(settings, dns_server, smtp_sink_factory, make_server, make_app, **app_fields) -> World:
    settings.HUB_DIRECT_PORT = port = free_port()
    settings.HUB_DIRECT_HELO_NAME = "hub.sender.test"
    settings.HUB_DIRECT_SLOT_WAIT_SECONDS = 0.5
    settings.HUB_DIRECT_ALLOW_PRIVATE = True  # the sinks are on 127.0.0.x
    mx.clear_cache()
    mta_sts.clear_cache()
    destinations.clear_cache()
    server = make_server(name="direct", kind="direct", host="", port=25, from_email=SENDER, timeout=5)
    app = make_app(server, name="direct", **app_fields).app
    return World(dns_server, smtp_sink_factory, port, server, app)


@pytest.fixture
def world(settings, dns_server, smtp_sink_factory, make_server, make_app) -> World:
    yield build_world(settings, dns_server, smtp_sink_factory, make_server, make_app)
    mx.clear_cache()
    mta_sts.clear_cache()
    destinations.clear_cache()
