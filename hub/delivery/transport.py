"""The connection: one SMTP session to one server (TLS, login, one transaction with per-
recipient replies, pipelined where the server offers it) and the process-wide pool that keeps
sessions open between messages, each holding one of its server's connection slots.
(Over 400 lines: the session and the pool that owns its slot belong together; the slot
bookkeeping itself is in slots.py.)

Direct delivery (hub.delivery.direct) uses the same sessions and pool with a DirectTarget:
one MX host address of a destination, no login, opportunistic STARTTLS, the server's HELO
name and source address; its sessions are pooled per (server, address) and hold one of the
destination's connection slots instead of the server's."""

from __future__ import annotations

import base64
import logging
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django import db
from django.conf import settings
from django.utils import timezone

from ..crypto import DecryptionError
from ..models import SendLog, SmtpServer
from . import mta_sts, slots

log = logging.getLogger(__name__)

# How often a process asks the database for a server's free connection slot while all are
# taken (another worker's slot coming free wakes nobody here).
SLOT_POLL_SECONDS = 0.2
# Campaign mail asked for a session this recently: the reserved lane's session is then closed
# on its return (ConnectionPool.put).
BULK_RECENT_SECONDS = 5.0


@dataclass
class Outcome:
    status: str  # SendLog.Status.SENT or FAILED
    smtp_code: int | None = None
    smtp_reply: str = ""
    error: str = ""
    refused: dict = field(default_factory=dict)
    # A transient failure (connection, timeout, 4xx) may succeed later; retry policy lives
    # in the caller.
    transient: bool = False
    # The connection was lost before DATA: nothing can have been delivered, so the message
    # may go again at once on a fresh connection.
    lost_before_data: bool = False
    # Direct delivery (hub.delivery.direct), a message some of whose recipient domains are
    # done and others wait: the recipients still to deliver (the row keeps only them), and
    # whether any recipient got the message (in this or an earlier attempt), which makes the
    # message `sent` if the rest is given up. counts_attempt=False: the wait was the
    # destination's ("too many", paused, paced, busy), not a failure: no attempt is counted.
    pending: list[str] | None = None
    partly_sent: bool = False
    counts_attempt: bool = True


class ConnectionFailed(Exception):
    """The server could not be reached, refused TLS or refused our login."""

    def __init__(self, error: str, smtp_code: int | None = None, smtp_reply: str = "", transient: bool = True):
        super().__init__(error)
        self.error, self.smtp_code, self.smtp_reply, self.transient = error, smtp_code, smtp_reply, transient


class TlsFailed(ConnectionFailed):
    """An opportunistic STARTTLS handshake failed (direct delivery): try again in plain text."""


def _reply_text(resp: bytes | str) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


def _sender_refused(code: int, resp: bytes | str) -> Outcome:
    return Outcome(SendLog.Status.FAILED, code, _reply_text(resp), f"sender refused: {code} {_reply_text(resp)}",
                   transient=400 <= code < 500)


def _all_refused(refused: dict[str, list]) -> Outcome:
    code, text = next(reversed(refused.values()))
    transient = all(400 <= c < 500 for c, _t in refused.values())
    return Outcome(SendLog.Status.FAILED, code, text, "all recipients refused", refused, transient)


@dataclass(frozen=True)
class DirectTarget:
    """Where a direct-delivery session connects: one address of one MX host."""

    mx_host: str
    address: str
    port: int
    destination_id: int
    helo: str
    source_address: str = ""
    # The destination's connections allowed now (adaptive); not part of the session's identity.
    connection_limit: int = field(default=1, compare=False)
    tls: bool = True  # False: plain text after a failed TLS handshake (opportunistic)
    # MTA-STS enforce (hub.delivery.mta_sts): STARTTLS required, certificate valid for mx_host.
    verify_tls: bool = False


def opportunistic_tls_context() -> ssl.SSLContext:
    """TLS as MTAs do it without MTA-STS/DANE: encrypt when offered, accept any certificate
    (a receiver's certificate rarely matches its MX name; refusing would only send the mail
    in plain text instead)."""
    return tls_context(verify=False)


def tls_context(verify: bool) -> ssl.SSLContext:
    """A client's TLS: the certificate and host name checked, or (`verify` off: a server's
    own setting, e.g. a self-signed relay or IMAP host) anything accepted."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _login(conn: smtplib.SMTP, username: str, password: str) -> None:
    try:
        (username + password).encode("ascii")
    except UnicodeEncodeError:
        # smtplib encodes credentials as ASCII; send AUTH PLAIN in UTF-8 ourselves (RFC 4616).
        token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
        code, resp = conn.docmd("AUTH", "PLAIN " + token)
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, resp)
        return
    conn.login(username, password)


class SmtpSession:
    """One open, authenticated connection to one SMTP server."""

    def __init__(self, server: SmtpServer, target: DirectTarget | None = None):
        self.server = server
        self.target = target
        self.conn: smtplib.SMTP | None = None
        self.opened_at = 0.0
        self.last_used = 0.0
        self.uses = 0
        # Set by the pool: the connection slot this session holds (freed when it closes),
        # the server settings it was opened with, and whether its slot was taken over.
        self.slot: slots.Slot | None = None
        self.fingerprint: tuple = ()
        self.slot_lost = False
        self.tls_used = False
        # The envelope (MAIL FROM, RCPT TOs) of the next message, written behind the last
        # one's content and not answered yet (send's `follow`): only its send may use the
        # session next; anyone else must close it.
        self.pending: tuple[str, list[str]] | None = None

    @property
    def key(self) -> int | tuple:
        """What the pool files this session under: the server, or (server, MX address)."""
        if self.target is None:
            return self.server.id
        return (self.server.id, self.target.address, self.target.port)

    def open(self) -> None:
        if self.target is not None:
            self._open_direct(self.target)
            return
        server = self.server
        try:
            password = server.get_password()
        except DecryptionError as exc:
            raise ConnectionFailed(str(exc), transient=False) from exc
        try:
            if server.security == SmtpServer.Security.SSL:
                conn = smtplib.SMTP_SSL(server.host, server.port, local_hostname=settings.HUB_DOMAIN,
                                        timeout=server.timeout, context=tls_context(server.verify_tls))
            else:
                conn = smtplib.SMTP(server.host, server.port, local_hostname=settings.HUB_DOMAIN,
                                    timeout=server.timeout)
            self.conn = conn
            conn.ehlo()
            if server.security == SmtpServer.Security.STARTTLS:
                conn.starttls(context=tls_context(server.verify_tls))
                conn.ehlo()
            if server.username:
                _login(conn, server.username, password)
            self.opened_at, self.uses = time.monotonic(), 0
            self.last_used = self.opened_at
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            raise ConnectionFailed(f"authentication failed: {exc.smtp_code} {_reply_text(exc.smtp_error)}",
                                   exc.smtp_code, _reply_text(exc.smtp_error), transient=False) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise ConnectionFailed(f"server refused the session: {exc.smtp_code} {_reply_text(exc.smtp_error)}",
                                   exc.smtp_code, _reply_text(exc.smtp_error),
                                   transient=400 <= exc.smtp_code < 500) from exc
        except (smtplib.SMTPException, OSError, ssl.SSLError, UnicodeError, ValueError) as exc:
            self.close()
            raise ConnectionFailed(f"cannot connect to {server.host}:{server.port}: "
                                   f"{type(exc).__name__}: {exc}") from exc

    def _open_direct(self, target: DirectTarget) -> None:
        """Connect to one MX address: greeting, EHLO (HELO if refused), STARTTLS when offered
        (any certificate), EHLO again; no login."""
        where = f"{target.mx_host} [{target.address}]:{target.port}"
        try:
            source = (target.source_address, 0) if target.source_address else None
            conn = smtplib.SMTP(local_hostname=target.helo, timeout=self.server.timeout, source_address=source)
            self.conn = conn
            code, greeting = conn.connect(target.address, target.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, greeting)
            # smtplib gives starttls() the host it connected to as the TLS server name; the
            # MX host's name is the right one (SNI), not its address.
            conn._host = target.mx_host
            code, _resp = conn.ehlo()
            if code != 250:
                code, resp = conn.helo()
                if code != 250:
                    raise smtplib.SMTPHeloError(code, resp)
            if target.verify_tls:
                if not conn.has_extn("starttls"):
                    raise ConnectionFailed(f"{where}: no STARTTLS offered, and the domain's MTA-STS policy "
                                           "requires TLS")
                conn.starttls(context=mta_sts.verified_tls_context())
                conn.ehlo()
                self.tls_used = True
            elif target.tls and conn.has_extn("starttls"):
                conn.starttls(context=opportunistic_tls_context())
                conn.ehlo()
                self.tls_used = True
            self.opened_at, self.uses = time.monotonic(), 0
            self.last_used = self.opened_at
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise ConnectionFailed(f"{where} refused the session: {exc.smtp_code} {_reply_text(exc.smtp_error)}",
                                   exc.smtp_code, _reply_text(exc.smtp_error),
                                   transient=not 500 <= exc.smtp_code < 600) from exc
        except ConnectionFailed:
            self.close()
            raise
        except ssl.SSLError as exc:
            self.close()
            if target.verify_tls:  # MTA-STS: no fallback to plain text
                raise ConnectionFailed(f"{where}: TLS required by the domain's MTA-STS policy failed: {exc}") from exc
            raise TlsFailed(f"{where}: TLS handshake failed: {exc}") from exc
        except (smtplib.SMTPException, OSError, UnicodeError, ValueError) as exc:
            self.close()
            raise ConnectionFailed(f"cannot connect to {where}: {type(exc).__name__}: {exc}") from exc

    def send(self, envelope_from: str, rcpts: list[str], data: str | bytes,
             follow: Callable[[], tuple[str, list[str]] | None] | None = None) -> Outcome:
        """One SMTP transaction. Per-recipient refusals are recorded; the message counts as
        sent when the server accepts it for at least one recipient. Where the server offers
        PIPELINING (RFC 2920), MAIL, every RCPT and DATA go out in one write and their
        replies are read one by one: one round trip instead of 2 + recipients.

        `follow` (pipelining only): asked once the server said 354, for the envelope (MAIL
        FROM, RCPT TOs) of the next message on this session, or None. That envelope and
        its DATA leave in the same write as this message's content (RFC 2920 allows the
        content as the first "command" of a group), so a message costs one round trip
        instead of two; its replies are read by the next send() (self.pending), which must
        be given the same envelope."""
        conn = self.conn
        assert conn is not None
        self.uses += 1
        self.last_used = time.monotonic()
        data_started = False
        pending, self.pending = self.pending, None
        try:
            if pending is not None or (settings.HUB_SMTP_PIPELINING and conn.has_extn("pipelining")):
                if pending is not None and pending != (envelope_from, rcpts):
                    raise smtplib.SMTPException("the envelope sent ahead is not this message's")
                early = self._pipelined_envelope(conn, envelope_from, rcpts, written=pending is not None)
                if isinstance(early, Outcome):
                    return early
                refused = early
                data_started = True
                # The next message's envelope, if any, goes with the content: its replies are
                # the next ones on the wire (set first: a failed write closes, which clears it).
                self.pending = follow() if follow is not None else None
                code, resp = self._send_data(conn, data, self.pending)
            else:
                code, resp = conn.mail(envelope_from)
                if code != 250:
                    conn.rset()
                    return _sender_refused(code, resp)
                refused = {}
                for rcpt in rcpts:
                    code, resp = conn.rcpt(rcpt)
                    if code not in (250, 251):
                        refused[rcpt] = [code, _reply_text(resp)]
                if len(refused) == len(rcpts):
                    conn.rset()
                    return _all_refused(refused)
                data_started = True
                code, resp = conn.data(data)
            self.last_used = time.monotonic()
            text = _reply_text(resp)
            if code != 250:
                return Outcome(SendLog.Status.FAILED, code, text, f"message refused: {code} {text}",
                               refused, transient=400 <= code < 500)
            return Outcome(SendLog.Status.SENT, code, text, "", refused)
        except smtplib.SMTPServerDisconnected as exc:
            self.close()
            return Outcome(SendLog.Status.FAILED, None, "", f"server disconnected: {exc}", transient=True,
                           lost_before_data=not data_started)
        except smtplib.SMTPResponseException as exc:
            # The transaction was left half-done (e.g. DATA refused): reset it, or drop the
            # connection, so the next message does not start inside it. (With the next
            # message's envelope on the wire, RSET would be answered out of step: drop it.)
            try:
                if self.pending is not None:
                    raise smtplib.SMTPException("an envelope was sent ahead")
                conn.rset()
            except (smtplib.SMTPException, OSError):
                self.close()
            text = _reply_text(exc.smtp_error)
            return Outcome(SendLog.Status.FAILED, exc.smtp_code, text, f"{exc.smtp_code} {text}",
                           transient=400 <= exc.smtp_code < 500)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return Outcome(SendLog.Status.FAILED, None, "", f"{type(exc).__name__}: {exc}", transient=True,
                           lost_before_data=not data_started)

    def _pipelined_envelope(self, conn: smtplib.SMTP, envelope_from: str, rcpts: list[str],
                            written: bool = False) -> Outcome | dict:
        """MAIL, RCPT..., DATA in one write (smtplib's own command formatting and reply
        reading: putcmd's text, getreply), unless `written` (sent ahead behind the previous
        message). Returns the refused recipients when DATA was answered 354 (the message may
        follow), else the Outcome. Every reply is read before anything else is sent, so the
        session is in step again whatever happened."""
        if not written:
            conn.send(_envelope(envelope_from, rcpts))
        mail_code, mail_resp = conn.getreply()
        refused: dict[str, list] = {}
        for rcpt in rcpts:
            code, resp = conn.getreply()
            if code not in (250, 251) or mail_code != 250:
                refused[rcpt] = [code, _reply_text(resp)]
        data_code, data_resp = conn.getreply()
        if data_code == 354 and (mail_code != 250 or len(refused) == len(rcpts)):
            # A server that accepts DATA with no valid recipient (RFC 2920 says it must not):
            # end the empty message at once, then reset; nothing was delivered.
            conn.send(f".{smtplib.CRLF}")
            conn.getreply()
            data_code = 0
        if data_code != 354:
            conn.rset()
            if mail_code != 250:
                return _sender_refused(mail_code, mail_resp)
            if len(refused) == len(rcpts):
                return _all_refused(refused)
            text = _reply_text(data_resp)
            return Outcome(SendLog.Status.FAILED, data_code, text, f"message refused: {data_code} {text}",
                           refused, transient=400 <= data_code < 500)
        return refused

    @staticmethod
    def _send_data(conn: smtplib.SMTP, data: str | bytes,
                   then: tuple[str, list[str]] | None = None) -> tuple[int, bytes]:
        """The message after a 354, ended by <CRLF>.<CRLF>, exactly as smtplib's data() sends
        it (its own line-end and dot-stuffing helpers), followed in the same write by the
        envelope `then` (the next message's, pipelined); returns the end-of-data reply."""
        if isinstance(data, str):
            data = smtplib._fix_eols(data).encode("ascii")
        quoted = smtplib._quote_periods(data)
        if quoted[-2:] != smtplib.bCRLF:
            quoted += smtplib.bCRLF
        ahead = _envelope(*then).encode(conn.command_encoding) if then is not None else b""
        conn.send(quoted + b"." + smtplib.bCRLF + ahead)
        return conn.getreply()

    def close(self) -> None:
        self.hang_up()
        slot, self.slot = self.slot, None
        if slot is not None:
            try:
                slots.release(slot)
            except Exception:
                # Not fatal: the lease runs out by itself within HUB_SMTP_SLOT_LEASE_SECONDS.
                log.warning("could not free connection slot %s of server %s; its lease will expire",
                            slot.number, slot.server_id, exc_info=True)

    def hang_up(self, quit: bool = True) -> None:
        """QUIT the connection (with quit=False, or when QUIT fails: drop it); the slot stays
        with the session (close() frees it)."""
        conn, self.conn = self.conn, None
        self.pending = None  # (QUIT's reply would be out of step; harmless: the socket closes)
        if conn is None:
            return
        if quit:
            try:
                conn.quit()  # closes the socket too
                return
            except (smtplib.SMTPException, OSError):
                pass
        try:
            conn.close()
        except OSError:
            pass

    @property
    def is_open(self) -> bool:
        return self.conn is not None

    def worn_out(self) -> bool:
        """Open longer than HUB_SMTP_REUSE_SECONDS or used HUB_SMTP_REUSE_MAX times."""
        now = time.monotonic()
        return now - self.opened_at > settings.HUB_SMTP_REUSE_SECONDS or self.uses >= settings.HUB_SMTP_REUSE_MAX

    def still_good(self) -> bool:
        """Reusable: young enough, not used too often, and, when it has been idle for a
        while, answers NOOP. (A connection that died anyway is caught at MAIL FROM, before
        any data, and replaced: see _try_servers.)"""
        if self.conn is None or self.worn_out():
            return False
        now = time.monotonic()
        if now - self.last_used < settings.HUB_SMTP_NOOP_AFTER_IDLE_SECONDS:
            return True
        try:
            return self.conn.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False


def _envelope(envelope_from: str, rcpts: list[str]) -> str:
    """MAIL, every RCPT and DATA as one pipelined group (smtplib's own command text)."""
    commands = [f"mail FROM:{smtplib.quoteaddr(envelope_from)}"]
    commands += [f"rcpt TO:{smtplib.quoteaddr(rcpt)}" for rcpt in rcpts]
    commands.append("data")
    return "".join(f"{command}{smtplib.CRLF}" for command in commands)


def _fingerprint(server: SmtpServer, target: DirectTarget | None = None) -> tuple:
    if target is not None:
        return (target, server.timeout)
    return (server.host, server.port, server.security, server.verify_tls, server.username,
            server.password_encrypted, server.timeout)


class NoConnectionSlot(Exception):
    """All of the server's max_connections are open (here or in other workers) and none came
    free within HUB_SMTP_SLOT_WAIT_SECONDS: the message waits, like one over a send limit."""


class ConnectionPool:
    """The open SMTP sessions of this process, shared by its delivery threads. A thread
    checks a session out for one message (`get`) and back in after it (`put`), so a session
    is never used by two threads at once. Each open session holds one of its server's
    connection slots (hub.delivery.slots, `SmtpServer.max_connections` across every worker
    and machine): when none is free, `get` waits for a session of this process to come back
    or a slot elsewhere to free up. Sessions are reused within HUB_SMTP_REUSE_SECONDS /
    HUB_SMTP_REUSE_MAX (NOOP first after an idle spell); a keeper thread renews the slots'
    leases and closes sessions idle for HUB_SMTP_IDLE_CLOSE_SECONDS, which frees their slots
    for other workers."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)  # the pool's lock (`with self._cond`)
        # Threads waiting for a session wait on their key's and lane's condition (same lock):
        # a session checked back in wakes ONE waiting thread of the lane that may take it
        # (urgent callers first), not every waiting thread of the pool, each of which then
        # asked the database for a slot. With 32 threads sharing 10 connections that cost
        # 6.6 ms of CPU per message (bench: --max-connections 10 at 30 ms, py-spy: half of
        # the qcluster's samples in slots.acquire waiting for SQLite's write gate).
        self._waits: dict[tuple, threading.Condition] = {}
        # Keyed by SmtpSession.key: the server id, or (server id, MX address, port) for direct.
        self._idle: dict[int | tuple, list[SmtpSession]] = {}  # sessions checked in
        self._open: dict[int | tuple, set[SmtpSession]] = {}  # every open session
        self._keeper: threading.Thread | None = None
        # Urgent callers (transactional mail) waiting in get(), by key.
        self._urgent: dict[int | tuple, int] = {}
        # When a bulk caller (campaign mail) last asked for a session, by key (monotonic).
        self._bulk_at: dict[int | tuple, float] = {}
        # When a thread of this process last found all of a key's slots below a limit taken,
        # by (key, limit) (monotonic): urgent callers may use one slot more than bulk ones.
        self._full_at: dict[tuple, float] = {}
        # Makes each slot's holder token; hub.delivery.lease sets it to its new_claim_token,
        # so a dead cluster's slots are found by its id.
        self.new_holder: Callable[[], str] = lambda: uuid.uuid4().hex

    @property
    def sessions(self) -> dict[int | tuple, set[SmtpSession]]:
        """Open sessions by key (server id; (server id, address, port) for direct delivery)."""
        with self._cond:
            return {sid: set(found) for sid, found in self._open.items() if found}

    def get(self, server: SmtpServer, wait: float | None = None, target: DirectTarget | None = None,
            bulk: bool = False) -> SmtpSession:
        """A session of `server` (direct delivery: to `target`) for this thread alone; raises
        ConnectionFailed, or NoConnectionSlot after `wait` seconds (default
        HUB_SMTP_SLOT_WAIT_SECONDS). A `bulk` caller (campaign mail) leaves a relay server's
        last connection to the others, and lets them have the next session checked back in
        first while they wait (transactional mail never waits behind a campaign)."""
        urgent = not bulk
        deadline = time.monotonic() + (settings.HUB_SMTP_SLOT_WAIT_SECONDS if wait is None else wait)
        fingerprint = _fingerprint(server, target)
        key = server.id if target is None else (server.id, target.address, target.port)
        if bulk:
            self._bulk_at[key] = time.monotonic()  # (a plain store: no lock needed)
        if urgent:
            with self._cond:
                self._urgent[key] = self._urgent.get(key, 0) + 1
        try:
            return self._get(server, key, fingerprint, deadline, target, urgent)
        finally:
            if urgent:
                with self._cond:
                    self._urgent[key] -= 1
                    if not self._urgent[key]:
                        # The sessions it left idle are for bulk callers now (they gave way).
                        self._wake(key, len(self._idle.get(key, ())))  # (the bulk lane now)

    def _get(self, server: SmtpServer, key: int | tuple, fingerprint: tuple, deadline: float,
             target: DirectTarget | None, urgent: bool) -> SmtpSession:
        limit = max(1, server.max_connections if target is None else target.connection_limit)
        if target is None and not urgent and limit >= 2:
            # The reserved lane: campaign mail may hold every connection of a relay server but
            # the last (slot number limit - 1), which waits for transactional mail, in any
            # worker; without it a transactional message in one worker waited for the other's
            # campaign sessions to close (the 100k MariaDB run: p99 2.8 s in `attempt`).
            limit -= 1
        while True:
            session = self._take_idle(key, urgent, below=limit)
            if session is not None:
                if session.fingerprint == fingerprint and not session.slot_lost:
                    if session.still_good():
                        return session
                    # Too old, used too often, or dead: a new connection on the same slot.
                    # Why not close it and take a slot again: every session of a busy pool
                    # wears out within seconds of the others (HUB_SMTP_REUSE_MAX), and the
                    # release-and-take let one worker's threads, woken at once, win every
                    # slot while another worker's threads polled: its whole crew stalled for
                    # seconds (the 100k MariaDB campaign: 1-6 s stalls every few seconds).
                    return self._reconnect(session)
                self._close(session)  # settings changed, or its slot was taken over: frees it
                continue
            if self._open_below(key, limit) >= limit or self._found_full_lately(key, limit):
                # This process holds every connection the limit allows (no slot can be free
                # anywhere), or another thread of it found none a moment ago: wait for a
                # session to come back rather than ask the database (a write transaction)
                # five times a second per waiting thread. (A bulk caller's "full" is one slot
                # short of an urgent caller's: it does not hold urgent callers back.)
                slot = None
            else:
                if target is None:
                    slot = slots.acquire(server, self.new_holder(), limit=limit)
                else:
                    slot = slots.acquire_destination(target.destination_id, target.connection_limit,
                                                     self.new_holder())
                if slot is None:
                    with self._cond:
                        self._full_at[(key, limit)] = time.monotonic()
            if slot is not None:
                return self._open_new(server, slot, fingerprint, target)
            with self._cond:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if target is not None:
                        raise NoConnectionSlot(f"all {target.connection_limit} connections to the destination of "
                                               f"{target.mx_host} are in use")
                    raise NoConnectionSlot(f"all {server.max_connections} connections to {server.host}:{server.port} "
                                           "are in use")
                if not urgent or not self._idle.get(key):
                    # A session of ours coming back wakes us; another worker's slot coming
                    # free does not, so look at the database again after a short while.
                    self._wait_of(key, urgent).wait(min(remaining, SLOT_POLL_SECONDS))

    def urgent_waiting(self, key: int | tuple) -> bool:
        """A transactional caller of this process waits in get() for a session of `key`."""
        with self._cond:
            return bool(self._urgent.get(key))

    def _found_full_lately(self, key: int | tuple, limit: int) -> bool:
        """All slots below `limit` (or below limit + 1, an urgent caller's limit when this is
        a bulk one's: those include them) were taken when a thread of this process last
        looked, less than SLOT_POLL_SECONDS ago."""
        with self._cond:
            at = max(self._full_at.get((key, limit), -1.0), self._full_at.get((key, limit + 1), -1.0))
        return time.monotonic() - at < SLOT_POLL_SECONDS

    def put(self, session: SmtpSession) -> None:
        """Check a session back in after a message (closed ones are forgotten, and so are
        ones with an envelope sent ahead that no message took: they are out of step)."""
        if not session.is_open or session.slot_lost or session.pending is not None:
            self._close(session)
            return
        with self._cond:
            # While campaign mail flows here, the reserved lane's session (see _get) is not
            # kept idle unless a transactional caller here waits for it: closing it frees its
            # slot for any worker's next transactional message. (Without campaign mail it is
            # kept: a busy transactional hub would otherwise reconnect it after each message.)
            close = (self._is_reserved(session) and not self._urgent.get(session.key)
                     and time.monotonic() - self._bulk_at.get(session.key, float("-inf")) < BULK_RECENT_SECONDS)
            if not close:
                self._idle.setdefault(session.key, []).append(session)
                self._wake(session.key)  # one session, one taker
        if close:
            self._close(session)

    @staticmethod
    def _is_reserved(session: SmtpSession) -> bool:
        limit = session.server.max_connections
        return (session.target is None and session.slot is not None and limit >= 2
                and session.slot.number >= limit - 1)

    def discard(self, session: SmtpSession) -> None:
        """A session that must not be used again (lost mid-transaction)."""
        self._close(session)

    def release_all(self) -> None:
        """Close every session and free its connection slot now (a worker process that ends:
        django-q2 replaces it after Q_RECYCLE tasks). Its slots would otherwise count as
        open until their leases ran out (HUB_SMTP_SLOT_LEASE_SECONDS), holding back the
        worker that replaces it. The connections are dropped without QUIT: an ending process
        must not wait on a server (a stalled one would hold a stopping worker for its timeout)."""
        for session in self._forget_all():
            session.hang_up(quit=False)
            session.close()  # frees the slot

    def close_all(self) -> None:
        """Hang up every session without touching the database (a test's teardown, where the
        database is gone): their slots free up when their leases expire, or at once when the
        cluster stops (hub.delivery.lease)."""
        for session in self._forget_all():
            session.slot = None
            session.close()

    # -- inside ---------------------------------------------------------------------------
    def _forget_all(self) -> list[SmtpSession]:
        """Every open session, no longer the pool's (idle or not)."""
        with self._cond:
            every = [s for found in self._open.values() for s in found]
            self._open.clear()
            self._idle.clear()
        return every

    def _wait_of(self, key: int | tuple, urgent: bool) -> threading.Condition:
        """The condition the threads of a lane (urgent or bulk) waiting for a session of
        `key` wait on (lock held)."""
        wait = self._waits.get((key, urgent))
        if wait is None:
            wait = self._waits[(key, urgent)] = threading.Condition(self._lock)
        return wait

    def _wake(self, key: int | tuple, n: int = 1) -> None:
        """Wake `n` threads waiting for `key` (lock held): urgent ones while any urgent
        caller is in get() (bulk callers may not take a session then), else bulk ones. One
        woken that cannot take what came back (the reserved lane's session) waits again;
        every waiting thread looks again within SLOT_POLL_SECONDS anyway."""
        wait = self._waits.get((key, bool(self._urgent.get(key))))
        if wait is not None and n > 0:
            wait.notify(n)

    def _take_idle(self, key: int | tuple, urgent: bool = False, below: int | None = None) -> SmtpSession | None:
        """An idle session of `key` (the most recently used: least likely to have timed out),
        of a slot numbered below `below` (the reserved lane's stays for urgent callers)."""
        with self._cond:
            idle = self._idle.get(key)
            if not idle or (not urgent and self._urgent.get(key)):
                return None  # none, or an urgent caller is waiting: it comes first
            for i in range(len(idle) - 1, -1, -1):
                if below is None or idle[i].slot is None or idle[i].slot.number < below:
                    return idle.pop(i)
            return None

    def _open_below(self, key: int | tuple, below: int) -> int:
        """Open sessions of `key` whose slot is numbered below `below`."""
        with self._cond:
            return sum(1 for s in self._open.get(key, ()) if s.slot is None or s.slot.number < below)

    def _open_new(self, server: SmtpServer, slot, fingerprint: tuple,
                  target: DirectTarget | None = None) -> SmtpSession:
        session = SmtpSession(server, target)
        session.slot, session.fingerprint = slot, fingerprint
        try:
            session.open()  # closes itself (and frees the slot) when it fails
        except BaseException:
            session.close()
            raise
        with self._cond:
            self._open.setdefault(session.key, set()).add(session)
            if self._keeper is None or not self._keeper.is_alive():
                self._keeper = threading.Thread(target=self._keep, name="smtp-pool-keeper", daemon=True)
                self._keeper.start()
        return session

    def _reconnect(self, session: SmtpSession) -> SmtpSession:
        session.hang_up()
        try:
            session.open()  # a failure frees the slot (SmtpSession.open closes itself)
        except BaseException:
            self._close(session)
            raise
        return session

    def _close(self, session: SmtpSession) -> None:
        with self._cond:
            self._open.get(session.key, set()).discard(session)
            idle = self._idle.get(session.key)
            if idle and session in idle:
                idle.remove(session)
            self._wake(session.key)  # its slot is free: a waiting thread may take it
        session.close()

    def _keep(self) -> None:
        """The keeper thread: every second, close sessions idle too long (or too old) and
        renew the leases of the others before they run out."""
        while True:
            time.sleep(1.0)
            try:
                self._keep_once()
            except Exception:
                log.exception("the SMTP connection keeper failed; trying again")
            finally:
                db.connections.close_all()  # this thread's own connection: never left open

    def _keep_once(self) -> None:
        now = time.monotonic()
        idle_limit = settings.HUB_SMTP_IDLE_CLOSE_SECONDS
        with self._cond:
            stale = [s for found in self._idle.values() for s in found
                     if now - s.last_used > idle_limit or now - s.opened_at > settings.HUB_SMTP_REUSE_SECONDS]
            for session in stale:
                self._idle[session.key].remove(session)
            every = [s for found in self._open.values() for s in found if s not in stale]
        for session in stale:
            self._close(session)
        renew_before = timezone.now() + timedelta(seconds=settings.HUB_SMTP_SLOT_LEASE_SECONDS / 2)
        for session in every:
            slot = session.slot
            if slot is not None and slot.expires_at < renew_before and not slots.renew(slot):
                # The lease ran out and another worker took the slot: this connection no
                # longer counts, so it must close (now if idle, else after its message).
                log.warning("connection slot %s of server %s was taken over; closing the connection",
                            slot.number, session.server.id)
                session.slot_lost = True
                if self._take_specific(session):
                    self._close(session)

    def _take_specific(self, session: SmtpSession) -> bool:
        with self._cond:
            idle = self._idle.get(session.key)
            if idle and session in idle:
                idle.remove(session)
                return True
            return False


pool = ConnectionPool()
