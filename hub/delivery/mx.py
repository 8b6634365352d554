"""Where a recipient domain's mail goes: its MX hosts (RFC 5321 5.1) and their addresses,
looked up with dnspython and cached for the answers' TTL.

- MX records by preference, hosts of equal preference in a random order on each lookup (so
  several workers spread over them), at most HUB_DIRECT_MAX_MX_HOSTS hosts.
- No MX record: the domain itself is the one host (its A/AAAA records, "implicit MX").
- Null MX (RFC 7505: one MX `0 .`): the domain accepts no mail, a permanent failure.
- No such domain (NXDOMAIN), or no MX and no address: permanent. A resolver that does not
  answer (timeout, SERVFAIL) or MX hosts without any address: temporary (retried).
- IPv4 addresses first, then IPv6 (HUB_DIRECT_IPV6): a host without an IPv6 route fails
  those quickly, and most receivers judge IPv6 senders more strictly.

The resolver is HUB_DNS_RESOLVER ("host:port"; empty = the system's), the one the sending
domains' checks ask too, so tests and air-gapped sites point both at their own server."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.resolver
from django.conf import settings


class RouteError(Exception):
    """No route to the domain's mail hosts. `permanent`: retrying cannot help."""

    permanent = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NullMx(RouteError):
    permanent = True


class NoSuchDomain(RouteError):
    permanent = True


class DnsTemporary(RouteError):
    permanent = False


@dataclass(frozen=True)
class MxHost:
    name: str
    preference: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class _Entry:
    expires: float
    hosts: tuple[MxHost, ...] = ()
    error: RouteError | None = None


_cache: dict[tuple[str, str], _Entry] = {}
_lock = threading.Lock()
_CACHE_MAX_ENTRIES = 50_000


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def parse_resolver(text: str) -> tuple[str, int] | None:
    """(host, port) of HUB_DNS_RESOLVER, None when empty; raises ValueError. (hub.domains'
    verification asks the same resolver: it imports this and `resolver`.)"""
    configured = (text or "").strip()
    if not configured:
        return None
    host, port = configured, "53"
    if configured.startswith("["):  # [::1]:5353
        host, _sep, rest = configured[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif configured.count(":") == 1:
        host, port = configured.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {configured!r}")
    return host, int(port)


def resolver() -> dns.resolver.Resolver:
    """A resolver asking HUB_DNS_RESOLVER (else the system's), within HUB_DNS_TIMEOUT."""
    server = parse_resolver(settings.HUB_DNS_RESOLVER)
    if server is None:
        res = dns.resolver.Resolver()
    else:
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [dns.nameserver.Do53Nameserver(*server)]
    res.lifetime = res.timeout = settings.HUB_DNS_TIMEOUT
    return res


def _query(res: dns.resolver.Resolver, name: str, rdtype: str) -> tuple[list, int | None]:
    """(records, ttl); raises dns.resolver.NXDOMAIN, or DnsTemporary when nobody answered."""
    try:
        answer = res.resolve(name, rdtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        raise
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.NoAnswer) as exc:
        raise DnsTemporary(f"DNS {rdtype} {name}: {exc.__class__.__name__}") from exc
    if answer.rrset is None:
        return [], None
    return list(answer.rrset), answer.rrset.ttl


def txt(name: str) -> list[str]:
    """The TXT records at `name` (strings joined), [] when none; raises DnsTemporary."""
    try:
        records, _ttl = _query(resolver(), name, "TXT")
    except dns.resolver.NXDOMAIN:
        return []
    return [b"".join(r.strings).decode("utf-8", "replace") for r in records]


def addresses(host: str) -> tuple[str, ...]:
    """A host's addresses (IPv4 first), () when it has none; raises DnsTemporary."""
    return _addresses(resolver(), host)[0]


def _addresses(res: dns.resolver.Resolver, host: str) -> tuple[tuple[str, ...], int | None]:
    found: list[str] = []
    ttls: list[int] = []
    for rdtype in ("A", "AAAA") if settings.HUB_DIRECT_IPV6 else ("A",):
        try:
            records, ttl = _query(res, host, rdtype)
        except dns.resolver.NXDOMAIN:
            break
        found += [r.address for r in records]
        if ttl is not None:
            ttls.append(ttl)
    return tuple(found), min(ttls) if ttls else None


def _lookup(domain: str) -> tuple[tuple[MxHost, ...], int]:
    res = resolver()
    try:
        records, ttl = _query(res, domain, "MX")
    except dns.resolver.NXDOMAIN as exc:
        raise NoSuchDomain(f"recipient domain {domain} does not exist (NXDOMAIN)") from exc
    ttls = [ttl] if ttl is not None else []
    exchanges = [(r.preference, r.exchange.to_text(omit_final_dot=True).lower()) for r in records]
    if exchanges and all(name in ("", ".") for _pref, name in exchanges):
        raise NullMx(f"recipient domain {domain} accepts no mail (null MX, RFC 7505)")
    exchanges = [(pref, name) for pref, name in exchanges if name not in ("", ".")]
    implicit = not exchanges
    if implicit:
        exchanges = [(0, domain)]  # RFC 5321 5.1: the domain's own address
    exchanges.sort(key=lambda e: e[0])
    hosts: list[MxHost] = []
    temporary: DnsTemporary | None = None
    for preference, name in exchanges[:settings.HUB_DIRECT_MAX_MX_HOSTS]:
        try:
            addresses, address_ttl = _addresses(res, name)
        except DnsTemporary as exc:
            temporary = exc
            continue
        if address_ttl is not None:
            ttls.append(address_ttl)
        if addresses:
            hosts.append(MxHost(name, preference, addresses))
    if not hosts:
        if temporary is not None:
            raise temporary
        if implicit:
            raise NoSuchDomain(f"recipient domain {domain} has no MX and no address record")
        raise DnsTemporary(f"no address for any MX host of {domain} ({', '.join(n for _p, n in exchanges)})")
    return tuple(hosts), min(ttls) if ttls else 60


def _shuffled(hosts: tuple[MxHost, ...]) -> list[MxHost]:
    """Preference order; hosts of equal preference in a random order (RFC 5321 5.1)."""
    return sorted(hosts, key=lambda h: (h.preference, random.random()))


def route(domain: str) -> list[MxHost]:
    """The hosts to try for `domain` (ASCII, any case), best first. Raises NullMx or
    NoSuchDomain (permanent) or DnsTemporary."""
    domain = domain.strip().rstrip(".").lower()
    key = (settings.HUB_DNS_RESOLVER, domain)
    now = time.monotonic()
    with _lock:
        entry = _cache.get(key)
    if entry is None or entry.expires <= now:
        try:
            hosts, ttl = _lookup(domain)
            entry = _Entry(now + max(1, min(ttl, settings.HUB_DIRECT_MX_CACHE_MAX_SECONDS)), hosts)
        except RouteError as exc:
            if not exc.permanent:
                raise  # not cached: the next message asks again
            entry = _Entry(now + settings.HUB_DIRECT_MX_NEGATIVE_SECONDS, error=exc)
        with _lock:
            if len(_cache) >= _CACHE_MAX_ENTRIES:
                _cache.clear()
            _cache[key] = entry
    if entry.error is not None:
        raise entry.error
    return _shuffled(entry.hosts)
