"""VERP return paths: the envelope sender (MAIL FROM) of a message is a signed address on the
hub's bounce domain, `b-<log id>-<signature>@HUB_BOUNCE_DOMAIN`, so a bounce coming back to it
names the message (and, with the DSN's Final-Recipient, the recipient) without reading the
returned copy, and nobody can forge one for a message they did not receive.

The token is per message (SendLog row): one SMTP transaction has one MAIL FROM for all its
recipients. A campaign row has exactly one recipient, so there it is per recipient; a
transactional message to several recipients is told apart by the DSN's recipient fields.

When it applies (docs/bounces.md): HUB_BOUNCE_DOMAIN is set AND the server has
`verp_return_path` on. Off by default because relays (upstream providers) mostly refuse a
MAIL FROM that is not the authenticated account's address; turn it on for servers that
accept any envelope sender (own MTAs, direct delivery to MX hosts).

Local parts are lower-case hex only: some MTAs lower-case the address they bounce to."""

from __future__ import annotations

import hashlib
import hmac
import re

from django.conf import settings

from ..models import SendLog, SmtpServer
from .message import ascii_address

PREFIX = "b-"
_SIG_HEX = 20  # 80 bits
_LOCAL = re.compile(rf"^b-([0-9a-f]{{1,16}})-([0-9a-f]{{{_SIG_HEX}}})$")


def _signature(log_id: int, secret: str) -> str:
    key = hashlib.sha256(b"smtphub.verp:" + secret.encode()).digest()
    return hmac.new(key, str(log_id).encode(), hashlib.sha256).hexdigest()[:_SIG_HEX]


def address(log_id: int, domain: str | None = None) -> str:
    """The bounce address for this message."""
    domain = domain or settings.HUB_BOUNCE_DOMAIN
    return f"{PREFIX}{log_id:x}-{_signature(log_id, settings.SECRET_KEY)}@{domain}"


def parse(addr: str) -> int | None:
    """The SendLog id a bounce address names, or None for anything else (another domain,
    a bad or forged signature). Constant-time signature check; keys in
    SECRET_KEY_FALLBACKS still verify, so a key rotation does not lose bounces in flight."""
    domain = settings.HUB_BOUNCE_DOMAIN
    local, at, dom = addr.strip().strip("<>").rpartition("@")
    if not domain or not at or dom.lower() != domain:
        return None
    match = _LOCAL.match(local.lower())
    if not match:
        return None
    log_id = int(match.group(1), 16)
    given = match.group(2)
    for secret in (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())):
        if hmac.compare_digest(given, _signature(log_id, secret)):
            return log_id
    return None


def uses_verp(server: SmtpServer) -> bool:
    """With a bounce domain configured: a relay when its admin switched VERP on (a relay may
    refuse a MAIL FROM outside its account), a direct server always (no relay to refuse it,
    and the recipient's MX returns the bounce to the address that names the message)."""
    return bool(settings.HUB_BOUNCE_DOMAIN) and (server.verp_return_path or server.is_direct)


def envelope_sender(row: SendLog, server: SmtpServer) -> str:
    """MAIL FROM for this message on this server: the VERP address where it applies, else
    the server's sender address (as every message before)."""
    if uses_verp(server):
        return address(row.id)
    return ascii_address(server.sender)
