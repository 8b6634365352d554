"""django-q2 task entry points. Kept tiny: the work is in hub.delivery, which tests call
directly; these are the names the queue stores."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task


def deliver(log_ids: list[int]) -> None:
    from .delivery import deliver_batch

    # A worker takes other waiting messages along (HUB_DELIVERY_BATCH in all): under load one
    # task then sends many messages over one connection, and their own tasks find them done.
    deliver_batch(log_ids, extra=max(0, settings.HUB_DELIVERY_BATCH - len(log_ids)))


def enqueue_delivery(log_ids: list[int]) -> None:
    """Queue delivery of SendLog rows. With the ORM broker the task row joins the caller's
    transaction; with Redis it is sent only after the rows are committed, so a worker never
    looks for a row that is not there yet (and a lost task is found by the sweeper)."""

    def send() -> None:
        async_task("hub.tasks.deliver", list(log_ids), task_name=f"deliver-{log_ids[0]}")

    if settings.REDIS_URL:
        # robust: Redis being down must not turn an accepted (committed) message into an
        # error answer; its row waits in `queued` and the sweeper enqueues it later.
        transaction.on_commit(send, robust=True)
    else:
        send()


def sweep() -> dict[str, int]:
    from .sweeper import sweep as run

    return run()
