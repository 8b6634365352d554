"""django-q2 entry points of the tracking app (names the queue stores)."""

from __future__ import annotations

from . import process


def process_hits() -> int:
    """Queued by the endpoints (hits.wake) and scheduled every minute (migration 0001)."""
    return process.process()
