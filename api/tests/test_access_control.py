"""Who may call the API: the site's IP blocklist (checked before credentials) and each app's
IP allowlist, both IPv4/IPv6 CIDR, read through the site's client-IP mode (forwarding
headers believed only from trusted proxies); and secret rotation, with an optional grace
period during which the old secret still works. Every refusal writes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import OrmQ

from api.tests.test_send_api import good_fields, post
from hub.models import App, SendLog, Site

PROXY = "10.0.0.2"


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    server = make_server(smtp_sink)
    return smtp_sink, server, make_app(server, name="guarded")


def configure_site(blocklist: str = "", mode: str = Site.ClientIpMode.REMOTE_ADDR,
                   trusted: str = f"127.0.0.1\n::1\n{PROXY}") -> None:
    site = Site.load()
    site.ip_blocklist, site.client_ip_mode, site.trusted_proxies = blocklist, mode, trusted
    site.full_clean()  # settings an admin could save
    site.save()


def send(client, creds: dict, remote: str = "127.0.0.1", url: str = "/api.php", **headers):
    return post(client, url, good_fields(creds), REMOTE_ADDR=remote, **headers)


def assert_refused(r, status: int, error: str, msg: str) -> None:
    assert r.status_code == status, r.content
    body = r.json()
    assert (body["code"], body["error"], body["msg"]) == (-1, error, msg)


def assert_nothing_written(sink) -> None:
    assert SendLog.objects.count() == 0
    assert OrmQ.objects.count() == 0  # no task: a worker has nothing to run
    assert sink.messages == []


def assert_accepted(r) -> None:
    assert r.status_code == 200, r.content
    assert r.json()["code"] == 0


BLOCKED = ("ip_blocked", "IP 已被禁止访问")
NOT_ALLOWED = ("ip_not_allowed", "IP 不在应用的白名单内")
BLOCKLIST = "198.51.100.0/24\n203.0.113.5\n2001:db8:bad::/48, 2001:db8::66"


# --- blocklist ---------------------------------------------------------------------------------

@pytest.mark.parametrize("remote", ["198.51.100.1", "198.51.100.254", "203.0.113.5", "2001:db8:bad::1",
                                    "2001:db8:bad:ffff::9", "2001:db8::66"])
@pytest.mark.parametrize("url", ["/api.php", "/api/v1/send"])
def test_blocked_address_is_refused_and_nothing_written(client, hub, remote, url):
    sink, _server, p = hub
    configure_site(BLOCKLIST)

    r = send(client, p.creds, remote, url)

    assert_refused(r, 403, *BLOCKED)
    assert remote in r.json()["detail"]
    assert_nothing_written(sink)


@pytest.mark.parametrize("remote", ["198.51.101.1", "203.0.113.6", "2001:db8:bae::1", "2001:db8::67", "127.0.0.1"])
def test_address_outside_the_blocklist_is_accepted(client, hub, remote):
    _sink, _server, p = hub
    configure_site(BLOCKLIST)
    assert_accepted(send(client, p.creds, remote))
    assert SendLog.objects.get().client_ip == remote


def test_blocklist_is_checked_before_credentials(client, hub):
    # A blocked client learns nothing about AppIDs or secrets.
    sink, _server, p = hub
    configure_site("198.51.100.0/24")
    for creds in ({"appid": str(p.app.id), "appsecret": "wrong"}, {"appid": "999999", "appsecret": "x"}, {}):
        r = post(client, "/api.php", good_fields(creds), REMOTE_ADDR="198.51.100.7")
        assert_refused(r, 403, *BLOCKED)
    assert_nothing_written(sink)


@pytest.mark.parametrize("mode,headers,remote,blocked", [
    # Through a trusted proxy, the forwarded client address is the one checked.
    (Site.ClientIpMode.X_FORWARDED_FOR, {"HTTP_X_FORWARDED_FOR": "198.51.100.7"}, PROXY, True),
    (Site.ClientIpMode.X_FORWARDED_FOR, {"HTTP_X_FORWARDED_FOR": "198.51.100.7, 10.0.0.2"}, "127.0.0.1", True),
    (Site.ClientIpMode.X_FORWARDED_FOR, {"HTTP_X_FORWARDED_FOR": "2001:db8:bad::5"}, "::1", True),
    (Site.ClientIpMode.X_FORWARDED_FOR, {"HTTP_X_FORWARDED_FOR": "192.0.2.1"}, PROXY, False),
    # A forged header from the client itself changes nothing, either way.
    (Site.ClientIpMode.X_FORWARDED_FOR, {"HTTP_X_FORWARDED_FOR": "198.51.100.7"}, "192.0.2.1", False),
    (Site.ClientIpMode.X_FORWARDED_FOR, {"HTTP_X_FORWARDED_FOR": "192.0.2.1"}, "198.51.100.7", True),
    # The client put a blocked address first; the proxy appended the real one.
    (Site.ClientIpMode.X_FORWARDED_FOR, {"HTTP_X_FORWARDED_FOR": "198.51.100.7, 192.0.2.1"}, PROXY, False),
    (Site.ClientIpMode.X_REAL_IP, {"HTTP_X_REAL_IP": "198.51.100.7"}, PROXY, True),
    (Site.ClientIpMode.X_REAL_IP, {"HTTP_X_REAL_IP": "198.51.100.7"}, "192.0.2.1", False),
    # REMOTE_ADDR mode believes no header at all.
    (Site.ClientIpMode.REMOTE_ADDR, {"HTTP_X_FORWARDED_FOR": "198.51.100.7"}, PROXY, False),
    (Site.ClientIpMode.REMOTE_ADDR, {"HTTP_X_FORWARDED_FOR": "192.0.2.1"}, "198.51.100.7", True),
])
def test_blocklist_with_client_ip_modes(client, hub, mode, headers, remote, blocked):
    sink, _server, p = hub
    configure_site(BLOCKLIST, mode)

    r = send(client, p.creds, remote, **headers)

    if blocked:
        assert_refused(r, 403, *BLOCKED)
        assert_nothing_written(sink)
    else:
        assert_accepted(r)
        assert SendLog.objects.count() == 1


# --- allowlist ---------------------------------------------------------------------------------

ALLOWLIST = "192.0.2.0/28\n2001:db8:1::/48"


@pytest.mark.parametrize("remote,allowed", [
    ("192.0.2.1", True), ("192.0.2.15", True), ("192.0.2.16", False), ("10.1.1.1", False),
    ("2001:db8:1::1", True), ("2001:db8:1:ffff::1", True), ("2001:db8:2::1", False), ("::1", False),
    ("127.0.0.1", False),
])
def test_allowlist(client, hub, remote, allowed):
    sink, _server, p = hub
    App.objects.filter(pk=p.app.pk).update(allowed_ips=ALLOWLIST)

    r = send(client, p.creds, remote)

    if allowed:
        assert_accepted(r)
        assert SendLog.objects.get().client_ip == remote
    else:
        assert_refused(r, 403, *NOT_ALLOWED)
        assert remote in r.json()["detail"]
        assert_nothing_written(sink)


def test_allowlist_through_a_trusted_proxy(client, hub):
    sink, _server, p = hub
    configure_site(mode=Site.ClientIpMode.X_FORWARDED_FOR)
    App.objects.filter(pk=p.app.pk).update(allowed_ips="192.0.2.0/24")

    # The proxy itself is not the client: its address is not what the allowlist checks.
    assert_refused(send(client, p.creds, PROXY), 403, *NOT_ALLOWED)
    assert_refused(send(client, p.creds, PROXY, HTTP_X_FORWARDED_FOR="198.51.100.1"), 403, *NOT_ALLOWED)
    # A stranger cannot claim an allowed address.
    assert_refused(send(client, p.creds, "198.51.100.1", HTTP_X_FORWARDED_FOR="192.0.2.9"), 403, *NOT_ALLOWED)
    assert_nothing_written(sink)

    assert_accepted(send(client, p.creds, PROXY, HTTP_X_FORWARDED_FOR="192.0.2.9"))
    assert SendLog.objects.get().client_ip == "192.0.2.9"


def test_allowlist_is_per_app(client, hub, make_app):
    _sink, server, p = hub
    App.objects.filter(pk=p.app.pk).update(allowed_ips="192.0.2.0/24")
    open_app = make_app(server, name="open")
    assert_accepted(send(client, open_app.creds, "198.51.100.1"))
    assert_refused(send(client, p.creds, "198.51.100.1"), 403, *NOT_ALLOWED)
    assert SendLog.objects.get().app_id == open_app.app.id


def test_allowlist_applies_to_status_queries(client, hub):
    _sink, _server, p = hub
    row_id = send(client, p.creds, "192.0.2.1").json()["id"]
    App.objects.filter(pk=p.app.pk).update(allowed_ips="192.0.2.0/24")
    fields = {"action": "status", **p.creds, "id": str(row_id)}

    assert_refused(post(client, "/api.php", fields, REMOTE_ADDR="198.51.100.1"), 403, *NOT_ALLOWED)
    r = post(client, "/api.php", fields, REMOTE_ADDR="192.0.2.1")
    assert r.status_code == 200 and r.json()["id"] == row_id


def test_wrong_secret_from_outside_the_allowlist_is_401(client, hub):
    # Credentials first: a wrong secret is refused as such, whatever the address.
    sink, _server, p = hub
    App.objects.filter(pk=p.app.pk).update(allowed_ips="192.0.2.0/24")
    r = send(client, {"appid": str(p.app.id), "appsecret": "wrong"}, "198.51.100.1")
    assert_refused(r, 401, "invalid_credentials", "应用不存在")
    assert_nothing_written(sink)


# --- secret rotation -------------------------------------------------------------------------

def creds_with(p, secret: str) -> dict:
    return {"appid": str(p.app.id), "appsecret": secret}


def rotate(p, grace: int = 0) -> str:
    app = App.objects.get(pk=p.app.pk)
    secret = app.rotate_secret(grace_seconds=grace)
    app.save()
    return secret


def test_rotation_without_grace_refuses_the_old_secret(client, hub):
    sink, _server, p = hub
    new = rotate(p)

    assert_refused(send(client, creds_with(p, p.secret)), 401, "invalid_credentials", "应用不存在")
    assert_nothing_written(sink)
    assert_accepted(send(client, creds_with(p, new)))


def test_rotation_with_grace_accepts_both_until_expiry(client, hub):
    _sink, _server, p = hub
    new = rotate(p, grace=3600)

    assert_accepted(send(client, creds_with(p, new)))
    assert_accepted(send(client, creds_with(p, p.secret)))  # the old one, within the grace period
    assert SendLog.objects.count() == 2

    App.objects.filter(pk=p.app.pk).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))

    assert_refused(send(client, creds_with(p, p.secret)), 401, "invalid_credentials", "应用不存在")
    assert SendLog.objects.count() == 2
    assert_accepted(send(client, creds_with(p, new)))


def test_second_rotation_ends_the_first_grace(client, hub):
    # Only the secret just replaced keeps a grace period, never the one before it.
    _sink, _server, p = hub
    middle = rotate(p, grace=3600)
    newest = rotate(p, grace=3600)
    assert_refused(send(client, creds_with(p, p.secret)), 401, "invalid_credentials", "应用不存在")
    assert_accepted(send(client, creds_with(p, middle)))
    assert_accepted(send(client, creds_with(p, newest)))


def rotate_command(*args) -> dict:
    out = StringIO()
    call_command("hub_app", "rotate-secret", *args, stdout=out)
    return json.loads(out.getvalue())


def test_rotate_secret_command_with_grace(client, hub):
    _sink, _server, p = hub
    before = timezone.now()
    out = rotate_command(str(p.app.id), "--grace", "600")

    assert out["appid"] == p.app.id
    valid_until = App.objects.get(pk=p.app.pk).previous_secret_expires_at
    assert before + timedelta(seconds=599) < valid_until <= timezone.now() + timedelta(seconds=600)
    assert out["old_secret_valid_until"] == valid_until.isoformat()
    assert_accepted(send(client, creds_with(p, out["appsecret"])))
    assert_accepted(send(client, creds_with(p, p.secret)))


def test_rotate_secret_command_without_grace(client, hub):
    _sink, _server, p = hub
    out = rotate_command(str(p.app.id))

    assert set(out) == {"appid", "appsecret"}
    assert_refused(send(client, creds_with(p, p.secret)), 401, "invalid_credentials", "应用不存在")
    assert_accepted(send(client, creds_with(p, out["appsecret"])))


def test_rotate_secret_command_refuses_negative_grace(hub):
    _sink, _server, p = hub
    digest = App.objects.get(pk=p.app.pk).secret_digest
    with pytest.raises(CommandError, match="grace"):
        rotate_command(str(p.app.id), "--grace", "-5")
    assert App.objects.get(pk=p.app.pk).secret_digest == digest  # unchanged
