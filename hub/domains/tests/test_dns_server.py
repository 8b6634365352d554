"""The test DNS server itself (root conftest.TestDns), over UDP and TCP with dnspython."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest


def test_records_set_at_runtime_over_udp_and_tcp(dns_server):
    dns_server.add("Example.ORG.", "TXT", "v=spf1 include:spf.hub.test -all")
    dns_server.add("example.org", "MX", "10 mx.hub.test")
    dns_server.add("example.org", "MX", "20 backup.hub.test")
    dns_server.add("www.example.org", "A", "192.0.2.7")
    dns_server.add("www.example.org", "AAAA", "2001:db8::7")
    res = dns_server.resolver()
    for tcp in (False, True):
        txt = res.resolve("example.org", "TXT", tcp=tcp)
        assert [b"".join(r.strings) for r in txt] == [b"v=spf1 include:spf.hub.test -all"]
        mx = sorted((r.preference, r.exchange.to_text()) for r in res.resolve("example.org", "MX", tcp=tcp))
        assert mx == [(10, "mx.hub.test."), (20, "backup.hub.test.")]
        assert [r.address for r in res.resolve("www.example.org", "A", tcp=tcp)] == ["192.0.2.7"]
        assert [r.address for r in res.resolve("www.example.org", "AAAA", tcp=tcp)] == ["2001:db8::7"]


def test_unknown_name_is_nxdomain_and_other_type_is_nodata(dns_server):
    dns_server.add("example.org", "TXT", "hello")
    query = dns.message.make_query("nothing.example.org", "TXT")
    answer = dns.query.udp(query, "127.0.0.1", port=dns_server.port, timeout=5)
    assert answer.rcode() == dns.rcode.NXDOMAIN
    answer = dns.query.tcp(dns.message.make_query("example.org", "MX"), "127.0.0.1", port=dns_server.port, timeout=5)
    assert answer.rcode() == dns.rcode.NOERROR and not answer.answer
    with pytest.raises(dns.resolver.NXDOMAIN):
        dns_server.resolver().resolve("nothing.example.org", "A")


def test_long_txt_is_split_and_cname_followed(dns_server):
    long_value = "v=DKIM1; k=rsa; p=" + "A" * 600
    dns_server.add("sel._domainkey.example.org", "TXT", long_value)
    answer = dns_server.resolver().resolve("sel._domainkey.example.org", "TXT")
    assert all(len(s) <= 255 for s in answer[0].strings)
    assert b"".join(answer[0].strings).decode() == long_value
    assert dns_server.dkim_dnsfunc(b"sel._domainkey.example.org.") == long_value.encode()
    assert dns_server.dkim_dnsfunc(b"none._domainkey.example.org.") is None
    dns_server.add("track.example.org", "CNAME", "count.hub.test")
    dns_server.add("count.hub.test", "A", "192.0.2.9")
    cname = dns_server.resolver().resolve("track.example.org", "CNAME")
    assert cname[0].target.to_text() == "count.hub.test."
    a = dns_server.resolver().resolve("track.example.org", "A")
    assert [r.address for r in a] == ["192.0.2.9"]


def test_set_replaces_and_clear_empties(dns_server, settings):
    assert settings.HUB_DNS_RESOLVER == dns_server.address
    dns_server.add("example.org", "TXT", "one")
    dns_server.set("example.org", "TXT", "two")
    assert [b"".join(r.strings) for r in dns_server.resolver().resolve("example.org", "TXT")] == [b"two"]
    dns_server.set("example.org", "TXT")
    with pytest.raises(dns.resolver.NXDOMAIN):
        dns_server.resolver().resolve("example.org", "TXT")
