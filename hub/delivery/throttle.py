"""Per-server send limits (per minute / hour / day) that hold across every worker process
and machine: the count lives in the database, and taking a slot locks the server row (on
SQLite the IMMEDIATE transaction locks the whole file), so two workers never both take the
last slot."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ..models import SmtpServer, ThrottleSlot

# A slot is counted a little longer than its window: the limit is checked when a worker
# takes the slot, the message reaches the server a moment later.
_MARGIN = timedelta(milliseconds=500)


def acquire(server: SmtpServer) -> tuple[ThrottleSlot | None, float]:
    """Take a slot on `server`. Returns (slot, 0) when the message may go now, else
    (None, seconds until a slot frees). Servers without limits cost no query."""
    limits = server.limits
    if not limits:
        return None, 0.0
    with transaction.atomic():
        list(SmtpServer.objects.select_for_update().filter(pk=server.pk).values_list("pk"))
        now = timezone.now()
        wait = 0.0
        for limit, seconds in limits:
            window = timedelta(seconds=seconds)
            recent = ThrottleSlot.objects.filter(server=server, at__gt=now - window - _MARGIN)
            count = recent.count()
            if count >= limit:
                # The slot that has to expire before one more message fits.
                oldest = recent.order_by("at").values_list("at", flat=True)[count - limit]
                wait = max(wait, (oldest + window + _MARGIN - now).total_seconds())
        if wait > 0:
            return None, wait
        return ThrottleSlot.objects.create(server=server, at=now), 0.0


def release(slot: ThrottleSlot | None) -> None:
    """Give back a slot that was not used (the server could not be reached)."""
    if slot is not None:
        ThrottleSlot.objects.filter(pk=slot.pk).delete()


def usage(server: SmtpServer) -> list[tuple[int, int, int]]:
    """(used, limit, window seconds) for each limit that is set, for the admin."""
    now = timezone.now()
    return [
        (ThrottleSlot.objects.filter(server=server, at__gt=now - timedelta(seconds=seconds)).count(), limit, seconds)
        for limit, seconds in server.limits
    ]


def purge(older_than: timedelta = timedelta(days=1, hours=1)) -> int:
    return ThrottleSlot.objects.filter(at__lt=timezone.now() - older_than).delete()[0]
