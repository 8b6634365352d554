"""The SMTP submission server (`manage.py smtpd`): systems that can only speak SMTP log in
with AppID / AppSecret and hand over their MIME message; it becomes a SendLog row in the
same queue, with the same retry, throttling and suppression rules as the HTTP API. The reply
to DATA is sent only after the row is committed."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from . import access, quota, sending
from .delivery.message import first_address
from .refusals import Refusal

log = logging.getLogger(__name__)

# Refusals as SMTP replies: permanent ones 5xx, those that may pass later 4xx.
SMTP_REPLIES = {
    "invalid_credentials": "535 5.7.8 Authentication credentials invalid",
    "app_disabled": "535 5.7.8 Application disabled",
    "ip_blocked": "535 5.7.1 Client IP address blocked",
    "ip_not_allowed": "535 5.7.1 Client IP address not allowed for this application",
    "rate_limited": "451 4.7.1 Rate limit reached, try again later",
    "no_smtp_server": "451 4.3.0 No upstream SMTP server configured for this application",
    "smtp_server_disabled": "451 4.3.0 No upstream SMTP server available",
    "recipient_suppressed": "550 5.1.1 Recipient suppressed (bounce, complaint or unsubscribe)",
    "invalid_address": "553 5.1.3 Invalid recipient address",
    "too_many_recipients": "452 4.5.3 Too many recipients",
    "to_required": "554 5.5.1 No valid recipients",
    "too_large": "552 5.3.4 Message too big",
    # Accounts (hub.quota): what an admin must change is permanent; what passes on its own
    # (a service that starts later, quota after a top-up or the next day) is temporary, so
    # the client's queue keeps the message instead of bouncing it.
    "account_disabled": "550 5.7.1 Account disabled",
    "service_disabled": "550 5.7.1 Sending service disabled for this account",
    "service_expired": "550 5.7.1 Sending service of this account has expired",
    "service_not_started": "451 4.7.1 Sending service of this account has not started yet",
    "quota_exhausted": "452 4.7.1 Sending quota of this account exhausted, try again later",
    "malformed_message": "554 5.6.0 Message refused: malformed header, it could not be relayed",
}

# Refusals of an AUTH command: always an AUTH reply (RFC 4954), whatever the refusal. An
# empty or undecodable login is wrong credentials, not a message refusal.
AUTH_REPLIES = {
    "app_disabled": "535 5.7.8 Application disabled",
    "ip_blocked": "535 5.7.1 Client IP address blocked",
    "ip_not_allowed": "535 5.7.1 Client IP address not allowed for this application",
}
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
TOO_MANY_FAILURES = "421 4.7.0 Too many failed logins, closing connection"
FROM_NOT_ALLOWED = "550 5.7.1 From must be the address you logged in as"
CREDENTIALS_EXPIRED = "535 5.7.8 Credentials no longer valid (secret rotated), authenticate again"

# The credential check is one indexed query: run it off the event loop's thread (Django's
# ORM refuses to run inside a running loop) and wait for it.
_auth_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="smtpd-auth")


def _reply(refusal: Refusal) -> str:
    return SMTP_REPLIES.get(refusal.error, "554 5.6.0 Message refused: " + refusal.error)


def _peer_ip(session) -> str | None:
    try:
        return str(ipaddress.ip_address(session.peer[0]))
    except (TypeError, ValueError, IndexError):
        return None


def _from_is(raw: bytes, address: str) -> bool:
    """Is the message's From header exactly `address` (one header, one address, any display
    name)? A list of authors would let a mailbox write in another's name."""
    head = BytesHeaderParser(policy=compat32).parsebytes(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
    values = head.get_all("From") or []
    if len(values) != 1 or len([a for _n, a in getaddresses([str(values[0])]) if a]) != 1:
        return False
    _name, addr = first_address(str(values[0]))
    return addr.lower() == address.lower()


def _auth_reply(refusal: Refusal) -> str:
    return AUTH_REPLIES.get(refusal.error, AUTH_INVALID)


def _check_login(login: bytes, password: bytes, ip: str | None):
    close_old_connections()
    try:
        # An AppID, or a registered checker's login (a mailbox address, hub.domains).
        return access.admit_smtp_login(login.decode("utf-8", "replace"), password.decode("utf-8", "replace"), ip)
    finally:
        close_old_connections()


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    try:
        app, extra = _auth_pool.submit(_check_login, auth_data.login, auth_data.password,
                                       _peer_ip(session)).result(30)
    except Refusal as refusal:
        login = auth_data.login.decode("ascii", "replace")
        # Only an AppID-shaped login is logged: a client that swapped the fields sends its secret there.
        log.info("smtpd: AUTH refused for AppID %s from %s: %s",
                 login if login.isdigit() and len(login) < 12 else "(not an AppID)", session.peer, refusal.error)
        session.hub_auth_failures += 1
        if (refusal.error == "login_rate_limited"
                or session.hub_auth_failures >= settings.HUB_SMTPD_AUTH_FAILURES_PER_SESSION > 0):
            # HubSMTP.smtp_AUTH waits, answers 421 and closes: nothing is sent from here.
            session.hub_drop = True
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=_auth_reply(refusal))
    # What this login proved, checked again at every MAIL (a rotated secret ends it).
    session.hub_login_digest = access.credential_digest(auth_data.password.decode("utf-8", "replace"))
    session.hub_extra_login = extra
    return AuthResult(success=True, auth_data=app)


def _db(func):
    """Run ORM work in a thread, with fresh connections (the server runs for days)."""

    def call(*args):
        close_old_connections()
        try:
            return func(*args)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=False)


class HubHandler:
    async def handle_exception(self, error: Exception) -> str:
        # Never hand an internal error's text (database names, paths) to the client.
        log.error("smtpd: unexpected error", exc_info=error)
        return "451 4.3.0 Internal error, try again later"
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        app = session.auth_data
        try:
            # The session may have logged in long ago: the app must still be enabled now.
            await _db(app.refresh_from_db)()
            if not app.enabled:
                return "550 5.7.1 Application disabled"
            # ... and the secret it logged in with must still be valid (rotated without grace:
            # no more mail on the old secret, even on a connection opened before).
            extra = session.hub_extra_login
            if not (await _db(extra.still_valid)() if extra is not None
                    else access.credential_still_valid(app, session.hub_login_digest)):
                session.authenticated = False
                session.auth_data = None
                return CREDENTIALS_EXPIRED
            await _db(quota.check_account)(app)  # out of service: refused before any data
            await _db(access.check_rate_limit)(app)
            await _db(sending.primary_sender)(app)
        except Refusal as refusal:
            return _reply(refusal)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= settings.HUB_MAX_RECIPIENTS:
            return SMTP_REPLIES["too_many_recipients"]
        try:
            await _db(sending.check_recipient)(session.auth_data, address)
        except Refusal as refusal:
            return _reply(refusal)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        extra = session.hub_extra_login
        if extra is not None and extra.must_send_from and not _from_is(raw, extra.must_send_from):
            return FROM_NOT_ALLOWED
        try:
            row = await _db(sending.accept_raw)(session.auth_data, list(envelope.rcpt_tos), raw, _peer_ip(session))
        except Refusal as refusal:
            return _reply(refusal)
        except Exception:  # the client must hear that we did not take it, never silence
            log.exception("smtpd: could not queue a message")
            return "451 4.3.0 Internal error, message not accepted; try again"
        session.hub_queued += 1
        log.info("smtpd: queued %s for AppID %s from %s (%d recipients, %d bytes)", row.id,
                 session.auth_data.pk, session.peer, len(envelope.rcpt_tos), len(raw))
        return f"250 2.0.0 OK: queued as {row.id}"


class HubSession(Session):
    """aiosmtpd's session with the hub's own state. `login_data` as a plain attribute:
    aiosmtpd still sets it after every AUTH and its property logs a deprecation warning."""

    login_data = None

    def __init__(self, loop):
        super().__init__(loop)
        self.hub_auth_failures = 0
        self.hub_drop = False  # too many failed logins: 421 and disconnect
        self.hub_login_digest = ""
        self.hub_queued = 0
        self.hub_extra_login = None  # a mailbox login (access.ExtraLogin), None for an AppID


class _PerCommandAtDebug(logging.Filter):
    """aiosmtpd logs every command and connection at INFO ("mail.log"); the hub logs one
    line per session and per message at INFO, so aiosmtpd's INFO records become DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return log.isEnabledFor(logging.DEBUG)
        return True


_aiosmtpd_log = logging.getLogger("mail.log")
if not any(isinstance(f, _PerCommandAtDebug) for f in _aiosmtpd_log.filters):
    _aiosmtpd_log.addFilter(_PerCommandAtDebug())


class HubSMTP(SMTP):
    """aiosmtpd's protocol, counting open sessions so a shutdown can wait for them."""

    sessions: set[HubSMTP] = set()

    def __init__(self, *args, auth_require_tls: bool = True, **kwargs):
        # aiosmtpd warns (twice per session) whenever AUTH is allowed without STARTTLS, even
        # on the implicit-TLS port where the whole session is encrypted: the decision is made
        # here (make_protocol) and set after its constructor.
        super().__init__(*args, auth_require_tls=True, **kwargs)
        self._auth_require_tls = auth_require_tls

    def _create_session(self) -> Session:
        return HubSession(self.loop)

    def connection_made(self, transport):
        HubSMTP.sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc):
        HubSMTP.sessions.discard(self)
        session = self.session
        if session is not None:
            app = session.auth_data
            log.info("smtpd: session from %s closed: AppID %s, %d queued, %d failed AUTH", session.peer,
                     app.pk if app is not None else "-", session.hub_queued, session.hub_auth_failures)
        super().connection_lost(exc)

    async def smtp_AUTH(self, arg: str) -> None:
        await super().smtp_AUTH(arg)
        if self.session is not None and self.session.hub_drop:
            # Slow a guesser down, then hang up (RFC 5321 4.2.5: 421 closes the channel).
            await asyncio.sleep(settings.HUB_SMTPD_AUTH_FAILURE_DELAY)
            await self.push(TOO_MANY_FAILURES)
            if self._handler_coroutine is not None:
                self._handler_coroutine.cancel()
            if self.transport is not None:
                self.transport.close()


def _tls_context() -> ssl.SSLContext | None:
    if not settings.HUB_SMTPD_TLS_CERT:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.HUB_SMTPD_TLS_CERT, settings.HUB_SMTPD_TLS_KEY or None)
    return ctx


def plaintext_auth_allowed(host: str) -> bool:
    """AUTH without TLS only when explicitly allowed *and* listening on loopback only."""
    if not settings.HUB_SMTPD_ALLOW_PLAINTEXT_AUTH:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def make_protocol(tls: ssl.SSLContext | None, implicit_tls: bool, plaintext_auth: bool) -> HubSMTP:
    return HubSMTP(
        HubHandler(),
        hostname=settings.HUB_DOMAIN,
        ident="SMTP Hub",
        data_size_limit=settings.HUB_SMTPD_MAX_MESSAGE_BYTES,
        decode_data=False,
        authenticator=authenticator,
        auth_required=True,
        # On the implicit-TLS port the whole session is encrypted already.
        auth_require_tls=not (implicit_tls or plaintext_auth),
        tls_context=None if implicit_tls else tls,
        require_starttls=False,
        timeout=settings.HUB_SMTPD_TIMEOUT,
    )


async def serve(host: str, port: int, tls_port: int = 0, stop: asyncio.Event | None = None,
                ready=None) -> None:
    """Listen until `stop` is set, then stop accepting and give open sessions
    HUB_SMTPD_SHUTDOWN_GRACE seconds to finish."""
    loop = asyncio.get_running_loop()
    tls = _tls_context()
    plaintext_auth = plaintext_auth_allowed(host)
    servers = [await loop.create_server(lambda: make_protocol(tls, False, plaintext_auth), host, port)]
    if tls_port:
        if tls is None:
            raise RuntimeError("HUB_SMTPD_TLS_PORT needs HUB_SMTPD_TLS_CERT and HUB_SMTPD_TLS_KEY")
        servers.append(await loop.create_server(lambda: make_protocol(tls, True, False), host, tls_port, ssl=tls))
    log.info("smtpd listening on %s:%s%s (STARTTLS %s, AUTH over plain text %s)", host, port,
             f" and {host}:{tls_port} (TLS)" if tls_port else "", "on" if tls else "off",
             "allowed (loopback)" if plaintext_auth else "refused")
    if ready is not None:
        ready()
    stop = stop or asyncio.Event()
    await stop.wait()
    for srv in servers:
        srv.close()
    deadline = loop.time() + settings.HUB_SMTPD_SHUTDOWN_GRACE
    while HubSMTP.sessions and loop.time() < deadline:
        await asyncio.sleep(0.1)
    for session in list(HubSMTP.sessions):
        if session.transport is not None:
            session.transport.close()
    log.info("smtpd stopped")
