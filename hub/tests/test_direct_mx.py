"""MX lookup for direct delivery (hub.delivery.mx) against the test DNS server: preference
order with equal preferences shuffled, implicit MX (A records), null MX, unknown domains,
hosts without addresses, and the TTL cache."""

from __future__ import annotations

import pytest

from hub.delivery import mx


@pytest.fixture(autouse=True)
def _fresh(dns_server):
    mx.clear_cache()
    yield
    mx.clear_cache()


def test_hosts_come_in_preference_order_with_equal_preferences_shuffled(dns_server):
    dns_server.set("shop.test", "MX", "30 c.shop.test", "10 a1.shop.test", "10 a2.shop.test")
    for name, address in (("a1.shop.test", "127.0.0.2"), ("a2.shop.test", "127.0.0.3"), ("c.shop.test", "127.0.0.4")):
        dns_server.set(name, "A", address)
    firsts = set()
    for _ in range(60):  # the order of a1/a2 is random per lookup: both lead at some point
        hosts = mx.route("shop.test")
        assert [h.preference for h in hosts] == [10, 10, 30]
        assert hosts[2].name == "c.shop.test" and hosts[2].addresses == ("127.0.0.4",)
        firsts.add(hosts[0].name)
        if len(firsts) == 2:
            break
    assert firsts == {"a1.shop.test", "a2.shop.test"}


def test_no_mx_means_the_domains_own_address(dns_server):
    dns_server.set("bare.test", "A", "127.0.0.5")
    dns_server.set("bare.test", "AAAA", "::1")
    [host] = mx.route("Bare.Test.")
    assert host.name == "bare.test" and host.preference == 0
    assert host.addresses == ("127.0.0.5", "::1")  # IPv4 first


def test_ipv6_can_be_left_out(dns_server, settings):
    settings.HUB_DIRECT_IPV6 = False
    dns_server.set("bare.test", "A", "127.0.0.5")
    dns_server.set("bare.test", "AAAA", "::1")
    assert mx.route("bare.test")[0].addresses == ("127.0.0.5",)


def test_null_mx_is_refused(dns_server):
    dns_server.set("nomail.test", "MX", "0 .")
    dns_server.set("nomail.test", "A", "127.0.0.5")
    with pytest.raises(mx.NullMx, match="RFC 7505") as caught:
        mx.route("nomail.test")
    assert caught.value.permanent


def test_unknown_domain_and_domain_without_mail_records_are_permanent(dns_server):
    with pytest.raises(mx.NoSuchDomain, match="NXDOMAIN"):
        mx.route("nowhere.test")
    dns_server.set("textonly.test", "TXT", "v=spf1 -all")
    with pytest.raises(mx.NoSuchDomain, match="no MX and no address"):
        mx.route("textonly.test")


def test_mx_hosts_without_any_address_are_temporary(dns_server):
    dns_server.set("broken.test", "MX", "10 gone.broken.test")
    with pytest.raises(mx.DnsTemporary) as caught:
        mx.route("broken.test")
    assert not caught.value.permanent


def test_a_resolver_that_does_not_answer_is_temporary_and_not_cached(dns_server, settings):
    dns_server.set("shop.test", "MX", "10 a.shop.test")
    dns_server.set("a.shop.test", "A", "127.0.0.2")
    resolver = settings.HUB_DNS_RESOLVER
    settings.HUB_DNS_RESOLVER, settings.HUB_DNS_TIMEOUT = "127.0.0.1:9", 0.3
    with pytest.raises(mx.DnsTemporary):
        mx.route("shop.test")
    settings.HUB_DNS_RESOLVER = resolver
    assert mx.route("shop.test")[0].addresses == ("127.0.0.2",)


def test_answers_are_cached_for_their_ttl(dns_server, monkeypatch):
    dns_server.set("shop.test", "MX", "10 a.shop.test")
    dns_server.set("a.shop.test", "A", "127.0.0.2")
    mx.route("shop.test")
    asked = len(dns_server.queries)
    dns_server.set("a.shop.test", "A", "127.0.0.9")
    assert mx.route("shop.test")[0].addresses == ("127.0.0.2",)  # from the cache
    assert len(dns_server.queries) == asked
    # 61 s later (the test server's TTL is 60): asked again.
    now = mx.time.monotonic()
    monkeypatch.setattr(mx.time, "monotonic", lambda: now + 61)
    assert mx.route("shop.test")[0].addresses == ("127.0.0.9",)


def test_unknown_domains_are_cached_too(dns_server):
    with pytest.raises(mx.NoSuchDomain):
        mx.route("nowhere.test")
    asked = len(dns_server.queries)
    with pytest.raises(mx.NoSuchDomain):
        mx.route("nowhere.test")
    assert len(dns_server.queries) == asked


def test_at_most_the_configured_number_of_mx_hosts(dns_server, settings):
    settings.HUB_DIRECT_MAX_MX_HOSTS = 2
    dns_server.set("many.test", "MX", *[f"{10 * i} m{i}.many.test" for i in range(1, 5)])
    for i in range(1, 5):
        dns_server.set(f"m{i}.many.test", "A", f"127.0.1.{i}")
    assert [h.name for h in mx.route("many.test")] == ["m1.many.test", "m2.many.test"]
