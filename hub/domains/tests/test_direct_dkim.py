"""A direct-delivered message (hub.delivery.direct) whose From is on a verified sending
domain arrives DKIM-signed, and dkimpy verifies the signatures against the keys published on
the test DNS server, as the receiving MX would. (Here rather than in hub/tests: the core's
tests do not import the domains app.)"""

from __future__ import annotations

import dkim
import pytest

from hub.delivery import destinations, mx
from hub.domains import services
from hub.domains.models import Domain
from hub.models import SendLog
from hub.tests.direct_world import build_world


@pytest.fixture
def direct(settings, dns_server, smtp_sink_factory, make_server, make_app, account, publish):
    world = build_world(settings, dns_server, smtp_sink_factory, make_server, make_app, account=account)
    domain = services.add_domain(account, "example.org")
    publish(domain)
    domain = services.run_check(domain)
    assert domain.status == Domain.Status.VERIFIED and domain.dkim_ok
    world.server.from_email = "news@example.org"
    world.server.save(update_fields=["from_email"])
    yield world
    mx.clear_cache()
    destinations.clear_cache()


def signatures(data: bytes) -> list[bytes]:
    return [value for name, value in dkim.DKIM(data).headers if name.lower() == b"dkim-signature"]


def test_direct_mail_from_a_verified_domain_is_signed_and_verifies(direct, dns_server):
    sink = direct.domain("dest.test", "127.0.0.2")
    [row] = direct.deliver(direct.send("reader@dest.test"))
    assert row.status == SendLog.Status.SENT, row.error
    data = sink.messages[0].content
    assert sink.messages[0].mail_from == "news@example.org"
    found = signatures(data)
    assert len(found) == 2 and all(b"d=example.org" in sig for sig in found)  # RSA and Ed25519
    d = dkim.DKIM(data)
    assert all(d.verify(idx=i, dnsfunc=dns_server.dkim_dnsfunc) for i in range(len(found)))


def test_every_domain_gets_the_same_signed_bytes(direct, dns_server):
    one, two = direct.domain("one.test", "127.0.0.2"), direct.domain("two.test", "127.0.0.3")
    [row] = direct.deliver(direct.send("a@one.test, b@two.test"))
    assert row.status == SendLog.Status.SENT
    assert one.messages[0].content == two.messages[0].content
    assert dkim.verify(two.messages[0].content, dnsfunc=dns_server.dkim_dnsfunc)
