"""Who may call: credentials (constant-time), the site's IP blocklist, each app's allowed IPs
and API rate limit, the caller's IP behind trusted proxies, and the one entry point each
front door calls before it acts (admit for the HTTP API, admit_login for SMTP AUTH)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import crypto, queries
from .models import ApiRateCounter, App, Site, parse_networks
from .refusals import Refusal


# --- credentials -------------------------------------------------------------------------

# Compared against when the AppID does not exist, so a wrong AppID costs the same time as
# a wrong secret and the two cannot be told apart.
_DUMMY_DIGEST = "0" * 64


def authenticate(appid: str, appsecret: str) -> App:
    appid, appsecret = appid.strip(), appsecret.strip()
    if not appid:
        raise Refusal("appid_required")
    if not appsecret:
        raise Refusal("appsecret_required")
    numeric = appid.isascii() and appid.isdigit() and len(appid) < 19
    app = queries.app(int(appid)) if numeric else None
    if app is None:
        # The same two digest comparisons App.check_secret makes, so a wrong AppID takes
        # as long as a wrong secret.
        ok = crypto.secret_matches(appsecret, _DUMMY_DIGEST) and crypto.secret_matches(appsecret, _DUMMY_DIGEST)
    else:
        ok = app.check_secret(appsecret)  # the current secret, or the old one in its grace period
    if app is None or not ok:
        raise Refusal("invalid_credentials")
    if not app.enabled:
        raise Refusal("app_disabled")
    return app


# --- who may call ------------------------------------------------------------------------

def _in_networks(ip: str | None, text: str) -> bool:
    if not ip or not text.strip():
        return False
    address = ipaddress.ip_address(ip)
    return any(address in net for net in parse_networks(text) if net.version == address.version)


def check_blocklist(ip: str | None, site: Site) -> None:
    if _in_networks(ip, site.ip_blocklist):
        raise Refusal("ip_blocked", f"{ip} is on the site's IP blocklist")


def check_allowlist(app: App, ip: str | None) -> None:
    if app.allowed_ips.strip() and not _in_networks(ip, app.allowed_ips):
        raise Refusal("ip_not_allowed", f"{ip} is not in this app's allowed IPs")


def check_rate_limit(app: App) -> None:
    """Count this request against the app's per-minute API limit (shared by all web
    processes through the database); refuses with the seconds to wait when over."""
    limit = app.rate_limit_per_minute
    if not limit:
        return
    now = timezone.now()
    window = now.replace(second=0, microsecond=0)
    with transaction.atomic():
        counter, _created = ApiRateCounter.objects.get_or_create(app=app, window_start=window)
        counted = ApiRateCounter.objects.filter(pk=counter.pk, count__lt=limit).update(count=F("count") + 1)
    if not counted:
        retry_after = 60 - now.second
        raise Refusal("rate_limited", f"at most {limit} requests per minute", retry_after=retry_after)


# --- client IP ---------------------------------------------------------------------------

def _ip(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_ip(meta: dict, site: Site) -> str | None:
    """The caller's address. Forwarding headers are believed only when the direct peer is
    one of the site's trusted proxies: anyone else could forge them."""
    remote = _ip(meta.get("REMOTE_ADDR", ""))
    if remote is None or site.client_ip_mode == Site.ClientIpMode.REMOTE_ADDR:
        return str(remote) if remote else None
    trusted = parse_networks(site.trusted_proxies)

    def is_trusted(ip) -> bool:
        return any(ip in net for net in trusted if net.version == ip.version)

    if not is_trusted(remote):
        return str(remote)
    if site.client_ip_mode == Site.ClientIpMode.X_REAL_IP:
        real = _ip(meta.get("HTTP_X_REAL_IP", ""))
        return str(real or remote)
    # X-Forwarded-For: walk from the nearest hop back; the first untrusted hop is the client.
    hops = [h for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            break
        if not is_trusted(ip):
            return str(ip)
        remote = ip
    return str(remote)


# --- one entry point for the HTTP API ------------------------------------------------------------

ACTIONS = ("send", "status")


@dataclass
class Admission:
    app: App
    ip: str | None
    action: str


def admit(meta: Mapping[str, str], read_field: Callable[[str], str] | None, default_action: str = "") -> Admission:
    """Everything the HTTP API checks before it acts on a request, in this order: the
    caller's IP against the site's blocklist (first, so a blocked caller learns nothing), the
    body's shape (`read_field` is None when it is not a form or JSON object), the action, the
    credentials, the app's allowed IPs, and for a send the app's rate limit. `read_field(name)`
    reads one request field as text; it is called lazily, so a malformed field is reported
    only once the checks before it have passed. Raises Refusal."""
    site = Site.cached()
    ip = client_ip(meta, site)
    check_blocklist(ip, site)
    if read_field is None:
        raise Refusal("bad_request", "the body must be a form or a JSON object")
    action = read_field("action").strip() or default_action
    if action not in ACTIONS:
        raise Refusal("unknown_action", f"unknown action {action[:50]!r}" if action else "action is required")
    app = authenticate(read_field("appid"), read_field("appsecret"))
    check_allowlist(app, ip)
    if action == "send":
        check_rate_limit(app)
    return Admission(app, ip, action)


def admit_login(appid: str, appsecret: str, ip: str | None) -> App:
    """The same checks for an SMTP submission's AUTH: the blocklist, the credentials, the
    app's allowed IPs. (The rate limit is counted per message, at MAIL.) Raises Refusal."""
    check_blocklist(ip, Site.cached())
    app = authenticate(appid, appsecret)
    check_allowlist(app, ip)
    return app
