"""The inbound SMTP listener (`manage.py hub_inbound`): the MX of HUB_BOUNCE_DOMAIN. It accepts
mail only for valid, signed VERP bounce addresses (hub.delivery.verp): any other RCPT is
refused (550) before DATA, so it is no relay and no mailbox; no AUTH is offered. A message is
size-limited (HUB_INBOUND_MAX_BYTES, 552 from aiosmtpd before it is stored) and processed
(hub.inbound.process) before the 250 reply, so a database failure makes the sender retry."""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.smtp import SMTP
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from hub.delivery import verp

from . import process

log = logging.getLogger(__name__)

REFUSED_RCPT = "550 5.1.1 No such bounce address"
TOO_MANY = "452 4.5.3 Too many recipients"
ACCEPTED = "250 2.0.0 Report processed"
FAILED = "451 4.3.0 Report could not be processed, try again later"


def _process(raw: bytes, log_ids: list[int]) -> int:
    close_old_connections()
    try:
        return sum(len(process.process(raw, verp_log_id=log_id)) for log_id in log_ids)
    finally:
        close_old_connections()


class InboundHandler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if verp.parse(address) is None:
            log.info("inbound: refused RCPT %r from %s", address[:100], session.peer)
            return REFUSED_RCPT
        if len(envelope.rcpt_tos) >= settings.HUB_INBOUND_RECIPIENTS:
            return TOO_MANY
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        log_ids = sorted({log_id for rcpt in envelope.rcpt_tos if (log_id := verp.parse(rcpt)) is not None})
        try:
            count = await sync_to_async(_process, thread_sensitive=False)(raw, log_ids)
        except Exception:
            log.exception("inbound: processing a report from %s failed", session.peer)
            return FAILED
        log.info("inbound: report for logs %s from %s: %d recipient outcome(s)", log_ids, session.peer, count)
        return ACCEPTED

    async def handle_exception(self, error: Exception) -> str:
        log.error("inbound: unexpected error", exc_info=error)
        return "421 4.3.0 Internal error, closing connection"


def make_protocol() -> SMTP:
    return SMTP(InboundHandler(), hostname=settings.HUB_BOUNCE_DOMAIN or settings.HUB_DOMAIN, ident="SMTP Hub bounces",
                data_size_limit=settings.HUB_INBOUND_MAX_BYTES, decode_data=False, auth_required=False,
                auth_require_tls=True, timeout=settings.HUB_INBOUND_TIMEOUT)


async def serve(host: str, port: int, stop: asyncio.Event, ready=None) -> None:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(make_protocol, host, port)
    log.info("inbound listener on %s:%s for *@%s", host, port, settings.HUB_BOUNCE_DOMAIN)
    if ready is not None:
        ready()
    await stop.wait()
    srv.close()
    await srv.wait_closed()
