"""Connection slots: at most `SmtpServer.max_connections` open connections to a server,
counted across every worker process and machine that shares the database.

A connection holds one ConnectionSlot row (server, number < max_connections) while it is
open: `acquire` takes the first number that is free (no row, an empty holder, or a lease that
has expired), `renew` extends the lease while the connection lives (the pool's keeper thread
does it every few seconds, hub.delivery.transport), `release` frees it when the connection
closes. A worker killed with its connections open stops counting when their leases expire
(HUB_SMTP_SLOT_LEASE_SECONDS), or at once when its cluster is found dead
(hub.delivery.lease frees its slots with its rows).

The holder token starts with the cluster's id, like a claim token (the pool makes it with
hub.delivery.lease.new_claim_token, which lease.py hands it: lease imports this package's
attempt module, so nothing here may import lease). Taking a slot is one short
write transaction that locks the server row first (on SQLite the IMMEDIATE transaction locks
the file), so two workers never take the same number. It costs one transaction per new
connection, not per message.

Direct delivery's destinations (hub.models.Destination) have slots of their own
(DestinationSlot, same columns, `acquire_destination`): a connection to any MX host of a
destination holds one; renew and release serve both kinds (the Slot knows its table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import ConnectionSlot, Destination, DestinationSlot, SmtpServer


@dataclass
class Slot:
    """A slot this process holds."""

    id: int
    server_id: int  # the owner: a server's id, or a destination's (model DestinationSlot)
    number: int
    holder: str
    expires_at: object  # datetime
    model: type = ConnectionSlot


def _lease() -> timedelta:
    return timedelta(seconds=settings.HUB_SMTP_SLOT_LEASE_SECONDS)


def acquire(server: SmtpServer, holder: str, limit: int | None = None) -> Slot | None:
    """Take a free connection slot on `server` for `holder` (a fresh token), or None when all
    `max_connections` are held (or all numbered below `limit`: the pool keeps the last one
    for transactional mail, hub.delivery.transport)."""
    full = max(1, server.max_connections)
    return _acquire(SmtpServer, ConnectionSlot, "server_id", server.pk, full if limit is None else min(limit, full),
                    holder)


def acquire_destination(destination_id: int, limit: int, holder: str) -> Slot | None:
    """The same for a direct-delivery destination, with its current (adaptive) limit."""
    return _acquire(Destination, DestinationSlot, "destination_id", destination_id, max(1, limit), holder)


def _acquire(owner_model: type, slot_model: type, owner_field: str, owner_id: int, limit: int,
             holder: str) -> Slot | None:
    with transaction.atomic():
        list(owner_model.objects.select_for_update().filter(pk=owner_id).values_list("pk"))
        now = timezone.now()
        rows = {number: (pk, held, expires) for pk, number, held, expires in
                slot_model.objects.filter(**{owner_field: owner_id}, number__lt=limit)
                .values_list("pk", "number", "holder", "expires_at")}
        for number in range(limit):
            entry = rows.get(number)
            expires = now + _lease()
            if entry is None:
                pk = slot_model.objects.create(**{owner_field: owner_id}, number=number, holder=holder,
                                               expires_at=expires).pk
                return Slot(pk, owner_id, number, holder, expires, slot_model)
            pk, held, until = entry
            # Free, or its holder died without giving it back: take it over.
            free = not held or until <= now
            if free and slot_model.objects.filter(pk=pk, holder=held).update(holder=holder, expires_at=expires):
                return Slot(pk, owner_id, number, holder, expires, slot_model)
    return None


def renew(slot: Slot) -> bool:
    """Extend the lease; False when the slot was taken over meanwhile (the lease had expired:
    the connection must then be closed, another worker counts it now)."""
    expires = timezone.now() + _lease()
    if slot.model.objects.filter(pk=slot.id, holder=slot.holder).update(expires_at=expires):
        slot.expires_at = expires
        return True
    return False


def release(slot: Slot) -> None:
    """The connection is closed: the slot is free for anyone."""
    slot.model.objects.filter(pk=slot.id, holder=slot.holder).update(holder="", expires_at=timezone.now())


def open_connections(server_ids: list[int] | None = None) -> dict[int, int]:
    """Connections open now per server id (slots held under a live lease), for the admin."""
    held = ConnectionSlot.objects.filter(~Q(holder=""), expires_at__gt=timezone.now())
    if server_ids is not None:
        held = held.filter(server_id__in=server_ids)
    counts: dict[int, int] = {}
    for server_id in held.values_list("server_id", flat=True):
        counts[server_id] = counts.get(server_id, 0) + 1
    return counts


def destination_connections(destination_ids: list[int] | None = None) -> dict[int, int]:
    """Connections open now per destination id, for the admin."""
    held = DestinationSlot.objects.filter(~Q(holder=""), expires_at__gt=timezone.now())
    if destination_ids is not None:
        held = held.filter(destination_id__in=destination_ids)
    counts: dict[int, int] = {}
    for destination_id in held.values_list("destination_id", flat=True):
        counts[destination_id] = counts.get(destination_id, 0) + 1
    return counts
