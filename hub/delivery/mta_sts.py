"""MTA-STS (RFC 8461) for direct delivery: a recipient domain that publishes a policy in
`enforce` mode gets its mail only over TLS with a certificate valid for an MX host the policy
names; no plain-text fallback.

- The TXT record `_mta-sts.<domain>` (`v=STSv1; id=...`) says a policy exists and its version.
- The policy comes from `https://mta-sts.<domain>/.well-known/mta-sts.txt` (HTTPS with a
  verified certificate, no redirects, at most 64 KiB, 200 only), asked of the host's address
  found with the hub's resolver (HUB_DNS_RESOLVER), on port HUB_DIRECT_MTA_STS_PORT (443).
- A policy is cached for its `max_age` (at most HUB_DIRECT_MTA_STS_CACHE_SECONDS) and fetched
  again when the TXT id changes. If a fetch fails, a cached policy (even expired) is used; with
  none, the domain is treated as having no policy (RFC 8461 5: mail is not held back for it).
- `testing` and `none` policies change nothing (the hub sends no TLS reports).
- HUB_DIRECT_TLS_CA_FILE: a CA bundle used instead of the system's for these verifications
  (tests; a private CA).
Off with HUB_DIRECT_MTA_STS=0 (then every domain gets opportunistic TLS only)."""

from __future__ import annotations

import http.client
import logging
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from . import mx

log = logging.getLogger(__name__)

MAX_POLICY_BYTES = 64 * 1024
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


@dataclass(frozen=True)
class Policy:
    mode: str  # enforce, testing, none
    mx: tuple[str, ...]
    max_age: int

    @property
    def enforced(self) -> bool:
        return self.mode == "enforce"

    def matches(self, host: str) -> bool:
        """RFC 8461 4.1: an exact name, or `*.example.net` for exactly one label more."""
        host = host.lower().rstrip(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                label, _dot, rest = host.partition(".")
                if label and rest == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False


@dataclass(frozen=True)
class _Entry:
    recheck: float  # the TXT record is asked again after this (HUB_DIRECT_MX_NEGATIVE_SECONDS)
    expires: float  # the policy's max_age
    policy_id: str
    policy: Policy | None


_cache: dict[str, _Entry] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def verified_tls_context() -> ssl.SSLContext:
    """A certificate valid for the name asked (system CAs, or HUB_DIRECT_TLS_CA_FILE)."""
    return ssl.create_default_context(cafile=settings.HUB_DIRECT_TLS_CA_FILE or None)


def parse(text: str) -> Policy | None:
    """The policy file (RFC 8461 3.2), None when it is not a valid STSv1 policy."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), []).append(value.strip())
    mode = (fields.get("mode") or [""])[0]
    try:
        max_age = int((fields.get("max_age") or [""])[0])
    except ValueError:
        return None
    if (fields.get("version") or [""])[0] != "STSv1" or mode not in ("enforce", "testing", "none") or max_age < 0:
        return None
    patterns = tuple(p.lower().rstrip(".") for p in fields.get("mx", []) if p)
    if mode != "none" and not patterns:
        return None
    return Policy(mode, patterns, max_age)


def _record_id(domain: str) -> str | None:
    """The id of the domain's one `v=STSv1` TXT record, None when there is none (or several)."""
    records = [r for r in mx.txt(f"_mta-sts.{domain}") if r.strip().startswith("v=STSv1")]
    if len(records) != 1:
        return None
    tags = dict(part.strip().partition("=")[::2] for part in records[0].split(";") if "=" in part)
    found = tags.get("id", "").strip()
    return found if _ID.match(found) else None


class _PinnedHttps(http.client.HTTPSConnection):
    """HTTPS to `host` (certificate checked for that name) at an address the hub resolved."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=verified_tls_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch(domain: str) -> Policy | None:
    """Fetch and parse the policy; raises OSError / ValueError / http.client errors."""
    host = f"mta-sts.{domain}"
    addresses = mx.addresses(host)
    if not addresses:
        raise ValueError(f"{host} has no address")
    conn = _PinnedHttps(host, addresses[0], settings.HUB_DIRECT_MTA_STS_PORT, settings.HUB_DNS_TIMEOUT)
    try:
        conn.request("GET", "/.well-known/mta-sts.txt", headers={"User-Agent": "smtphub"})
        response = conn.getresponse()
        if response.status != 200:
            raise ValueError(f"{host} answered HTTP {response.status}")
        body = response.read(MAX_POLICY_BYTES + 1)
    finally:
        conn.close()
    if len(body) > MAX_POLICY_BYTES:
        raise ValueError(f"{host}: policy larger than {MAX_POLICY_BYTES} bytes")
    return parse(body.decode("utf-8", "replace"))


def policy(domain: str) -> Policy | None:
    """The domain's MTA-STS policy now, None when it has none (or MTA-STS is off). The TXT
    record is asked at most once per HUB_DIRECT_MX_NEGATIVE_SECONDS per domain and process
    (not per message); the policy file only when its id changed or its max_age ran out."""
    if not settings.HUB_DIRECT_MTA_STS:
        return None
    now = time.monotonic()
    with _lock:
        cached = _cache.get(domain)
    if cached is not None and cached.recheck > now:
        return cached.policy
    live = cached.policy if cached is not None and cached.expires > now else None
    try:
        policy_id = _record_id(domain)
    except mx.DnsTemporary:
        return cached.policy if cached else None  # DNS trouble: keep what we know
    if policy_id is None:
        # No record: a policy still in its max_age keeps applying (RFC 8461 3.3).
        _store(domain, _Entry(now + settings.HUB_DIRECT_MX_NEGATIVE_SECONDS,
                              cached.expires if live else now, cached.policy_id if live else "", live))
        return live
    if live is not None and cached.policy_id == policy_id:
        _store(domain, _Entry(now + settings.HUB_DIRECT_MX_NEGATIVE_SECONDS, cached.expires, policy_id, live))
        return live
    try:
        found = fetch(domain)
    except (OSError, ValueError, http.client.HTTPException, mx.DnsTemporary) as exc:
        log.warning("MTA-STS policy of %s could not be fetched (%s: %s)%s", domain, type(exc).__name__, exc,
                    "; using the cached one" if cached and cached.policy else "")
        return cached.policy if cached else None  # not stored: asked again with the next message
    if found is None:
        log.warning("MTA-STS policy of %s is not a valid STSv1 policy; ignored", domain)
        return cached.policy if cached else None
    ttl = min(found.max_age, settings.HUB_DIRECT_MTA_STS_CACHE_SECONDS)
    _store(domain, _Entry(now + settings.HUB_DIRECT_MX_NEGATIVE_SECONDS, now + ttl, policy_id, found))
    return found


def _store(domain: str, entry: _Entry) -> None:
    with _lock:
        if len(_cache) > 50_000:
            _cache.clear()
        _cache[domain] = entry
