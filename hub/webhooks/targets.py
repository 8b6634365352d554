"""Where a webhook may point: URL rules and the address policy against SSRF.

A webhook makes the hub send requests to addresses its customers choose. Without a rule a
customer could aim it at the hub's own network (the database, a metadata service at
169.254.169.254, an admin port on localhost) and read the answers in the delivery log.
So: http/https only, no credentials in the URL, at most 2000 characters; and every address
the host resolves to must be global (not private, loopback, link-local, shared, multicast
or reserved) unless an operator allows its network in HUB_WEBHOOK_ALLOW_NETWORKS.

The address is checked twice: when the endpoint is saved (a literal IP or `localhost`,
so a mistake is told at once) and at every connection, on the very address connected to
(sender.py), so a name that later resolves to an internal address (DNS rebinding) is
refused too."""

from __future__ import annotations

import ipaddress
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.utils.translation import gettext as _

from .models import KINDS

MAX_URL = 2000


class TargetError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, str(message)


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n.strip(), strict=False) for n in settings.HUB_WEBHOOK_ALLOW_NETWORKS if n.strip()]


def address_allowed(address: str) -> bool:
    """May the hub connect to this IP address? Global unicast addresses yes; others only
    inside HUB_WEBHOOK_ALLOW_NETWORKS."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    if any(ip in net for net in _allowed_networks()):
        return True
    return ip.is_global and not ip.is_multicast


def validate_url(url: str) -> str:
    """The URL, stripped, or TargetError. Does not resolve names (no DNS at save time)."""
    url = (url or "").strip()
    if not url:
        raise TargetError("url_error", _("the URL is empty"))
    if len(url) > MAX_URL:
        raise TargetError("url_error", _("the URL is longer than %(n)s characters") % {"n": MAX_URL})
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise TargetError("url_error", _("the URL contains spaces or control characters"))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetError("url_error", _("the URL is malformed")) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise TargetError("url_error", _("only http:// and https:// URLs are allowed"))
    host = parts.hostname or ""
    if not host:
        raise TargetError("url_error", _("the URL has no host"))
    if parts.username is not None or parts.password is not None:
        raise TargetError("url_error", _("credentials in the URL are not allowed (the signature authenticates us)"))
    if port == 0:
        raise TargetError("url_error", _("the URL's port is invalid"))
    if parts.fragment:
        raise TargetError("url_error", _("the URL must not have a #fragment"))
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if not url.isascii():
        url = _ascii(parts)
    if (literal is not None and not address_allowed(str(literal))) or (
            literal is None and (host == "localhost" or host.endswith(".localhost"))
            and not address_allowed("127.0.0.1")):
        raise TargetError("url_forbidden", _("the URL points to a private or local address"))
    return url


def _ascii(parts) -> str:
    """An internationalized URL as the request line needs it: the host in IDNA (punycode),
    path and query percent-encoded as UTF-8."""
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise TargetError("url_error", _("the URL's host name is not valid")) from None
    netloc = f"{host}:{parts.port}" if parts.port else host
    path = quote(parts.path, safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    return urlunsplit((parts.scheme.lower(), netloc, path, query, ""))


def parse_kinds(value: str | list[str] | tuple[str, ...]) -> str:
    """Event kinds as the stored comma-separated text, in hub.events' order; TargetError for
    an unknown or empty choice."""
    items = value.split(",") if isinstance(value, str) else list(value)
    chosen = {str(item).strip().lower() for item in items if str(item).strip()}
    unknown = chosen - set(KINDS)
    if unknown:
        raise TargetError("events_error", _("unknown event kinds: %(kinds)s (known: %(known)s)")
                          % {"kinds": ", ".join(sorted(unknown))[:200], "known": ", ".join(KINDS)})
    if not chosen:
        raise TargetError("events_error", _("choose at least one event kind"))
    return ",".join(k for k in KINDS if k in chosen)
