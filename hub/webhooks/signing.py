"""The signature on every POST, and the reference check a receiver makes (the tests'
receiver uses `verify`; docs/webhooks.md has the same in Python and PHP).

    X-Hub-Timestamp: 1764500000                        (Unix seconds, when it was sent)
    X-Hub-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

The timestamp is inside the signed text, so an old request replayed later is refused by a
receiver that allows only REPLAY_WINDOW seconds between the timestamp and its own clock;
each event's `id` lets it drop the duplicates a retry or a resend brings (at least once)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "X-Hub-Signature"
TIMESTAMP_HEADER = "X-Hub-Timestamp"
DELIVERY_HEADER = "X-Hub-Delivery"
VERSION = "v1"
REPLAY_WINDOW = 300  # seconds, the window docs/webhooks.md tells receivers to allow
SECRET_MIN, SECRET_MAX = 16, 200


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"{VERSION}={mac.hexdigest()}"


def headers(secret: str, body: bytes, delivery_id: str, now: float | None = None) -> dict[str, str]:
    timestamp = int(now if now is not None else time.time())
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body),
            DELIVERY_HEADER: delivery_id}


def verify(secret: str, timestamp_header: str, signature_header: str, body: bytes,
           now: float | None = None, window: int = REPLAY_WINDOW) -> bool:
    """What a receiver does: the timestamp within `window` seconds of its clock, and one of
    the header's comma-separated signatures equal (in constant time) to its own."""
    try:
        timestamp = int(timestamp_header)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > window:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in (signature_header or "").split(","))
