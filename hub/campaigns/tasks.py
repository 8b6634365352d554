"""django-q2 entry points of the campaigns app (names the queue stores)."""

from __future__ import annotations

from . import dispatch as _dispatch
from . import pacer as _pacer


def dispatch(campaign_id: int, token: str) -> str:
    return _dispatch.run(campaign_id, token)


def sweep() -> dict[str, int]:
    return _dispatch.sweep()


def pace() -> str:
    return _pacer.loop(_dispatch.run)
