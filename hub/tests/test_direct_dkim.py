"""A direct-delivered message whose From is on a verified sending domain arrives DKIM-signed
(hub.delivery.signing, the domains app's signer), and dkimpy verifies the signatures against
the keys published on the test DNS server, as the receiving MX would."""

from __future__ import annotations

import dkim
import pytest

from hub.domains import services, signer
from hub.domains.models import Domain
from hub.models import Account, SendLog


@pytest.fixture
def verified(world, settings, dns_server):
    settings.HUB_SPF_INCLUDE, settings.HUB_MX_HOST, settings.HUB_DKIM_SELECTOR = "spf.hub.test", "mx.hub.test", "hub"
    signer.clear_cache()
    account = Account.objects.create(name="direct-dkim")
    world.app.account = account
    world.app.save(update_fields=["account"])
    domain = services.add_domain(account, "example.org")
    dns_server.add("example.org", "TXT", "v=spf1 include:spf.hub.test -all")
    dns_server.add("example.org", "MX", "10 mx.hub.test")
    for key in domain.keys.filter(state="active"):
        dns_server.add(key.dns_name, "TXT", key.record)
    domain = services.run_check(domain)
    assert domain.status == Domain.Status.VERIFIED and domain.dkim_ok
    world.server.from_email = "news@example.org"
    world.server.save(update_fields=["from_email"])
    yield domain
    signer.clear_cache()


def test_direct_mail_from_a_verified_domain_is_signed_and_verifies(world, verified, dns_server):
    sink = world.domain("dest.test", "127.0.0.2")
    [row] = world.deliver(world.send("reader@dest.test"))
    assert row.status == SendLog.Status.SENT, row.error
    data = sink.messages[0].content
    assert sink.messages[0].mail_from == "news@example.org"
    d = dkim.DKIM(data)
    signatures = [value for name, value in d.headers if name.lower() == b"dkim-signature"]
    assert len(signatures) >= 1 and b"d=example.org" in signatures[0]
    assert all(d.verify(idx=i, dnsfunc=dns_server.dkim_dnsfunc) for i in range(len(signatures)))


def test_the_same_signed_bytes_go_to_every_domain(world, verified, dns_server):
    one, two = world.domain("one.test", "127.0.0.2"), world.domain("two.test", "127.0.0.3")
    [row] = world.deliver(world.send("a@one.test, b@two.test"))
    assert row.status == SendLog.Status.SENT
    assert one.messages[0].content == two.messages[0].content
    assert dkim.verify(two.messages[0].content, dnsfunc=dns_server.dkim_dnsfunc)
