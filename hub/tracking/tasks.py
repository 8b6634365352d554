"""django-q2 entry points of the tracking app (names the queue stores)."""

from __future__ import annotations

from . import process, trackdomains


def process_hits() -> int:
    """Queued by the endpoints (hits.wake) and scheduled every minute (migration 0001)."""
    return process.process()


def recheck_domains() -> int:
    """Scheduled every 10 minutes (migration 0001): tracking domains' CNAMEs checked again."""
    return trackdomains.recheck_due()
