"""The client IP recorded on each SendLog row, per Site.client_ip_mode. Forwarding headers
can be forged by anyone, so they are believed only when the direct peer is a trusted proxy."""

from __future__ import annotations

import pytest

from api.tests.test_send_api import good_fields, post
from hub.models import SendLog, Site

PROXY = "10.0.0.2"      # our reverse proxy, trusted below
STRANGER = "198.51.100.9"  # a direct caller who is not a proxy


@pytest.fixture
def creds(smtp_sink, make_server, make_app) -> dict:
    return make_app(make_server(smtp_sink)).creds


def configure(mode: str, trusted: str = f"127.0.0.1\n::1\n{PROXY}") -> None:
    site = Site.load()
    site.client_ip_mode = mode
    site.trusted_proxies = trusted
    site.full_clean()  # the settings we test with are ones the admin would accept
    site.save()


def recorded_ip(client, creds: dict, remote_addr: str, **headers) -> str | None:
    r = post(client, "/api.php", good_fields(creds), REMOTE_ADDR=remote_addr, **headers)
    assert r.json()["code"] == 0, r.json()
    return SendLog.objects.get(pk=r.json()["id"]).client_ip


@pytest.mark.parametrize("headers", [
    {},
    {"HTTP_X_FORWARDED_FOR": "203.0.113.7"},
    {"HTTP_X_REAL_IP": "203.0.113.7"},
    {"HTTP_X_FORWARDED_FOR": "203.0.113.7", "HTTP_X_REAL_IP": "203.0.113.8"},
])
@pytest.mark.parametrize("remote", [PROXY, "127.0.0.1", STRANGER])
def test_remote_addr_mode_ignores_headers(client, creds, headers, remote):
    configure(Site.ClientIpMode.REMOTE_ADDR)
    assert recorded_ip(client, creds, remote, **headers) == remote


def test_default_mode_is_remote_addr(client, creds):
    assert Site.load().client_ip_mode == Site.ClientIpMode.REMOTE_ADDR
    assert recorded_ip(client, creds, "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7") == "127.0.0.1"


@pytest.mark.parametrize("remote,xff,expected", [
    # From a trusted proxy: the client is the hop it added.
    (PROXY, "203.0.113.7", "203.0.113.7"),
    ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
    ("::1", "2001:db8::7", "2001:db8::7"),
    # The client may send its own X-Forwarded-For; only the hops our proxies appended count:
    # walking back from the nearest hop, the first untrusted address is the client.
    (PROXY, "1.2.3.4, 203.0.113.7", "203.0.113.7"),
    ("127.0.0.1", "1.2.3.4, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
    ("127.0.0.1", " 203.0.113.7 ,10.0.0.2 ", "203.0.113.7"),
    # Every hop trusted: the farthest one is the best we know.
    ("127.0.0.1", "10.0.0.2", "10.0.0.2"),
    # Not from a trusted proxy: the header is the caller's own claim, ignored.
    (STRANGER, "203.0.113.7", STRANGER),
    (STRANGER, "127.0.0.1", STRANGER),
    # No header at all.
    (PROXY, None, PROXY),
])
def test_x_forwarded_for_mode(client, creds, remote, xff, expected):
    configure(Site.ClientIpMode.X_FORWARDED_FOR)
    headers = {"HTTP_X_FORWARDED_FOR": xff} if xff is not None else {}
    assert recorded_ip(client, creds, remote, **headers) == expected


def test_x_forwarded_for_with_a_trusted_cidr(client, creds):
    configure(Site.ClientIpMode.X_FORWARDED_FOR, trusted="10.0.0.0/8\n172.16.0.0/12")
    # Two proxy layers inside the trusted ranges; the client is the hop before them.
    assert recorded_ip(client, creds, "10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.7, 172.16.5.5") == "203.0.113.7"
    # 127.0.0.1 is not trusted in this configuration.
    SendLog.objects.all().delete()
    assert recorded_ip(client, creds, "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7") == "127.0.0.1"


@pytest.mark.parametrize("xff", [
    "",
    "   ",
    ",,,",
    "not-an-ip",
    "203.0.113.7:8080",  # a port is not part of the address
    "300.1.2.3",
    "unknown",
    "203.0.113.7, garbage",  # the nearest hop is unreadable: believe nothing beyond it
    "<script>",
])
def test_x_forwarded_for_garbage_falls_back(client, creds, xff):
    configure(Site.ClientIpMode.X_FORWARDED_FOR)
    assert recorded_ip(client, creds, PROXY, HTTP_X_FORWARDED_FOR=xff) == PROXY


@pytest.mark.parametrize("remote,real_ip,expected", [
    (PROXY, "203.0.113.7", "203.0.113.7"),
    ("127.0.0.1", " 2001:db8::9 ", "2001:db8::9"),
    (STRANGER, "203.0.113.7", STRANGER),  # not a proxy: ignored
    (PROXY, None, PROXY),
    (PROXY, "", PROXY),
    (PROXY, "garbage", PROXY),
    (PROXY, "203.0.113.7, 1.2.3.4", PROXY),  # X-Real-IP holds one address, not a list
])
def test_x_real_ip_mode(client, creds, remote, real_ip, expected):
    configure(Site.ClientIpMode.X_REAL_IP)
    headers = {"HTTP_X_REAL_IP": real_ip} if real_ip is not None else {}
    assert recorded_ip(client, creds, remote, **headers) == expected


def test_x_real_ip_mode_ignores_x_forwarded_for(client, creds):
    configure(Site.ClientIpMode.X_REAL_IP)
    assert recorded_ip(client, creds, PROXY, HTTP_X_FORWARDED_FOR="203.0.113.7") == PROXY


def test_x_forwarded_for_mode_ignores_x_real_ip(client, creds):
    configure(Site.ClientIpMode.X_FORWARDED_FOR)
    assert recorded_ip(client, creds, PROXY, HTTP_X_REAL_IP="203.0.113.7") == PROXY


@pytest.mark.parametrize("mode", list(Site.ClientIpMode))
def test_missing_remote_addr_does_not_break_sending(client, creds, mode):
    """A WSGI server on a unix socket may give no REMOTE_ADDR: the send is still accepted
    (whether a forwarding header is then believed is a deployment policy, not pinned here)."""
    configure(mode)
    ip = recorded_ip(client, creds, "", HTTP_X_FORWARDED_FOR="203.0.113.7", HTTP_X_REAL_IP="203.0.113.7")
    if mode == Site.ClientIpMode.REMOTE_ADDR:
        assert ip is None
