"""django-q2 task entry points. Kept tiny: the work is in hub.delivery, which tests call
directly; these are the names the queue stores."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task


def deliver(log_ids: list[int]) -> None:
    from .delivery import deliver_batch

    deliver_batch(log_ids)


def enqueue_delivery(log_ids: list[int]) -> None:
    """Queue delivery of SendLog rows. With the ORM broker the task row joins the caller's
    transaction; with Redis it is sent only after the rows are committed, so a worker never
    looks for a row that is not there yet (and a lost task is found by the sweeper)."""

    def send() -> None:
        async_task("hub.tasks.deliver", list(log_ids), task_name=f"deliver-{log_ids[0]}")

    if settings.REDIS_URL:
        transaction.on_commit(send)
    else:
        send()


def sweep() -> dict[str, int]:
    from .sweeper import sweep as run

    return run()
