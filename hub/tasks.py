"""django-q2 task entry points: the names the queue stores. Kept thin on purpose: the work
is in hub.delivery.outbox and hub.sweeper, which tests call directly. Nothing imports this
module; the outbox queues `hub.tasks.drain` by name (see hub.delivery.outbox.wake_workers)."""

from __future__ import annotations

from .delivery import outbox
from . import sweeper


def drain() -> int:
    return outbox.drain()


def deliver(log_ids: list[int]) -> None:
    """Deliver these rows now (if still waiting). Queued by earlier versions of the hub,
    one task per message; kept so such tasks still run after an upgrade."""
    outbox.deliver_batch(log_ids)


def sweep() -> dict[str, int]:
    return sweeper.sweep()
