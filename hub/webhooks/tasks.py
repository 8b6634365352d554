"""django-q2 entry points of the webhooks app (names the queue stores)."""

from __future__ import annotations

from . import outbox


def drain() -> int:
    return outbox.drain()


def sweep() -> dict[str, int]:
    return outbox.sweep()
