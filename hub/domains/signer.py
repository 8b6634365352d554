"""DKIM signing of outgoing mail (registered with hub.delivery.signing in apps.py).

A message is signed when the domain of its final From header is a verified domain (verified
or broken) of the sending app's account: one RSA-SHA256 signature, plus an Ed25519-SHA256
one (RFC 8463) when the domain has an active Ed25519 key. Canonicalization relaxed/relaxed,
so relays that re-fold headers or trailing whitespace do not break it. dkimpy's default
header list (From oversigned, To, Subject, Date, Message-ID, MIME headers, ...).

Decrypted keys are kept per process for HUB_DKIM_KEY_CACHE_SECONDS (default 60): a rotation
or a new verification is seen by every worker within that time; without the cache every
message would cost two queries and a Fernet decryption."""

from __future__ import annotations

import functools
import re
import threading
import time
from email.parser import BytesHeaderParser
from email.policy import compat32

import dkim
from django.conf import settings

from hub.delivery.message import first_address
from hub.models import App

from .models import DkimKey, Domain

_ALGORITHMS = {DkimKey.Algorithm.RSA: b"rsa-sha256", DkimKey.Algorithm.ED25519: b"ed25519-sha256"}
_NOT_SIGNED: list = []

_cache: dict[tuple, tuple[float, object]] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _cached(key: tuple, load):
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
    value = load()
    with _lock:
        if len(_cache) > 10_000:  # bounded: many accounts x domains in one worker
            _cache.clear()
        _cache[key] = (now + settings.HUB_DKIM_KEY_CACHE_SECONDS, value)
    return value


def _account_id(app_id: int) -> int | None:
    return _cached(("app", app_id), lambda: App.objects.filter(pk=app_id).values_list("account_id", flat=True).first())


def _load_keys(account_id: int, domain_name: str) -> list[tuple[bytes, bytes, bytes]]:
    domain = Domain.objects.filter(account_id=account_id, name=domain_name,
                                   status__in=(Domain.Status.VERIFIED, Domain.Status.BROKEN)).first()
    if domain is None:
        return _NOT_SIGNED
    rows = DkimKey.objects.filter(domain=domain, state=DkimKey.State.ACTIVE).order_by("algorithm")
    # RSA first: it is the signature every receiver checks; Ed25519 is the second one.
    rows = sorted(rows, key=lambda k: k.algorithm != DkimKey.Algorithm.RSA)
    return [(k.selector.encode(), k.get_private_key().encode(), _ALGORITHMS[k.algorithm]) for k in rows]


# The first From field of a header block: its line and continuation lines (RFC 5322 2.2.3).
_FROM_FIELD = re.compile(rb"^From:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", re.IGNORECASE | re.MULTILINE)


def from_domain(data: bytes) -> str:
    """The domain of the message's From address, lower case, IDNA; "" when none."""
    head = data.split(b"\r\n\r\n", 1)[0]
    field = _FROM_FIELD.search(head)
    return _domain_of_field(field.group(0)) if field else ""


@functools.lru_cache(maxsize=4096)
def _domain_of_field(field: bytes) -> str:
    # Per field, not per message: a campaign's million messages share a handful of From
    # fields, and parsing the whole head for each was a twentieth of a worker's CPU.
    headers = BytesHeaderParser(policy=compat32).parsebytes(field + b"\r\n\r\n")
    _name, address = first_address(str(headers.get("From", "")))
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    if not domain:
        return ""
    try:
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return ""


def sign(row, data: bytes) -> bytes:
    domain = from_domain(data)
    if not domain:
        return data
    account_id = _account_id(row.app_id)
    if account_id is None:
        return data
    keys = _cached(("keys", account_id, domain), lambda: _load_keys(account_id, domain))
    if not keys:
        return data
    signatures = [dkim.sign(data, selector, domain.encode(), private, canonicalize=(b"relaxed", b"relaxed"),
                            signature_algorithm=algorithm, linesep=b"\r\n")
                  for selector, private, algorithm in keys]
    return b"".join(signatures) + data
