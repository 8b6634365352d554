"""The hook that signs a message's final bytes (DKIM) just before it is sent.

The core does not know who signs: an EDM app (hub.domains) registers its signer in its
AppConfig.ready(). hub.delivery.message.wire_bytes calls sign() on the serialized message,
after the last change to its headers, so the signature covers exactly what leaves the hub.

A signer that raises does not stop the mail: the message goes out as it was before that
signer (unsigned), and the failure is logged at ERROR with the SendLog id. Why: a broken key
(e.g. HUB_ENCRYPTION_KEYS changed) would otherwise hold every message of the domain until an
admin notices; unsigned mail is what the hub sent before the domain was verified, and the
log says loudly that it happened."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

Signer = Callable[[object, bytes], bytes]

_signers: list[Signer] = []


def register(signer: Signer) -> None:
    """Add `signer(row, data) -> data` (idempotent: ready() may run more than once)."""
    if signer not in _signers:
        _signers.append(signer)


def sign(row, data: bytes) -> bytes:
    for signer in _signers:
        try:
            data = signer(row, data)
        except Exception as exc:
            # With the traceback (source lines, never local values: no key material).
            log.exception("signing SendLog %s failed (%s); it is sent without this signature",
                          getattr(row, "id", "?"), exc.__class__.__name__)
    return data
