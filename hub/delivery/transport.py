"""The connection: one SMTP session to one server (TLS, login, one transaction with per-
recipient replies) and the per-thread pool that keeps sessions open between messages."""

from __future__ import annotations

import base64
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings

from ..crypto import DecryptionError
from ..models import SendLog, SmtpServer


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


class ConnectionFailed(Exception):
    """The server could not be reached, refused TLS or refused our login."""

    def __init__(self, error: str, smtp_code: int | None = None, smtp_reply: str = "", transient: bool = True):
        super().__init__(error)
        self.error, self.smtp_code, self.smtp_reply, self.transient = error, smtp_code, smtp_reply, transient


def _reply_text(resp: bytes | str) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


def tls_context(server: SmtpServer) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not server.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _login(conn: smtplib.SMTP, username: str, password: str) -> None:
    try:
        (username + password).encode("ascii")
    except UnicodeEncodeError:
        # smtplib encodes credentials as ASCII; send AUTH PLAIN in UTF-8 ourselves (RFC 4616).
        token = base64.b64encode(f"\0{username}\0{password}".encode("utf-8")).decode("ascii")
        code, resp = conn.docmd("AUTH", "PLAIN " + token)
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, resp)
        return
    conn.login(username, password)


class SmtpSession:
    """One open, authenticated connection to one SMTP server."""

    def __init__(self, server: SmtpServer):
        self.server = server
        self.conn: smtplib.SMTP | None = None
        self.opened_at = 0.0
        self.last_used = 0.0
        self.uses = 0

    def open(self) -> None:
        server = self.server
        try:
            password = server.get_password()
        except DecryptionError as exc:
            raise ConnectionFailed(str(exc), transient=False) from exc
        try:
            if server.security == SmtpServer.Security.SSL:
                conn = smtplib.SMTP_SSL(server.host, server.port, local_hostname=settings.HUB_DOMAIN,
                                        timeout=server.timeout, context=tls_context(server))
            else:
                conn = smtplib.SMTP(server.host, server.port, local_hostname=settings.HUB_DOMAIN,
                                    timeout=server.timeout)
            self.conn = conn
            conn.ehlo()
            if server.security == SmtpServer.Security.STARTTLS:
                conn.starttls(context=tls_context(server))
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

    def send(self, envelope_from: str, rcpts: list[str], data: str | bytes) -> Outcome:
        """One SMTP transaction. Per-recipient refusals are recorded; the message counts as
        sent when the server accepts it for at least one recipient."""
        conn = self.conn
        assert conn is not None
        self.uses += 1
        self.last_used = time.monotonic()
        data_started = False
        try:
            code, resp = conn.mail(envelope_from)
            if code != 250:
                conn.rset()
                return Outcome(SendLog.Status.FAILED, code, _reply_text(resp),
                               f"sender refused: {code} {_reply_text(resp)}", transient=400 <= code < 500)
            refused: dict[str, list] = {}
            for rcpt in rcpts:
                code, resp = conn.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = [code, _reply_text(resp)]
            if len(refused) == len(rcpts):
                conn.rset()
                code, text = next(reversed(refused.values()))
                transient = all(400 <= c < 500 for c, _t in refused.values())
                return Outcome(SendLog.Status.FAILED, code, text, "all recipients refused", refused, transient)
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
            # connection, so the next message does not start inside it.
            try:
                conn.rset()
            except (smtplib.SMTPException, OSError):
                self.close()
            text = _reply_text(exc.smtp_error)
            return Outcome(SendLog.Status.FAILED, exc.smtp_code, text, f"{exc.smtp_code} {text}",
                           transient=400 <= exc.smtp_code < 500)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return Outcome(SendLog.Status.FAILED, None, "", f"{type(exc).__name__}: {exc}", transient=True)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                try:
                    self.conn.close()
                except OSError:
                    pass
            self.conn = None

    @property
    def is_open(self) -> bool:
        return self.conn is not None

    def still_good(self) -> bool:
        """Reusable: young enough, not used too often, and, when it has been idle for a
        while, answers NOOP. (A connection that died anyway is caught at MAIL FROM, before
        any data, and replaced: see _try_servers.)"""
        if self.conn is None:
            return False
        now = time.monotonic()
        if now - self.opened_at > settings.HUB_SMTP_REUSE_SECONDS or self.uses >= settings.HUB_SMTP_REUSE_MAX:
            return False
        if now - self.last_used < settings.HUB_SMTP_NOOP_AFTER_IDLE_SECONDS:
            return True
        try:
            return self.conn.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False


def _fingerprint(server: SmtpServer) -> tuple:
    return (server.host, server.port, server.security, server.verify_tls, server.username,
            server.password_encrypted, server.timeout)


class ConnectionPool:
    """Open SMTP connections of this worker process, one per server, reused across tasks
    within HUB_SMTP_REUSE_SECONDS / HUB_SMTP_REUSE_MAX and checked with NOOP first. Each
    thread has its own (a threaded web server may deliver `sync=1` sends in parallel)."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def sessions(self) -> dict[int, tuple[tuple, SmtpSession]]:
        if not hasattr(self._local, "sessions"):
            self._local.sessions = {}
        return self._local.sessions

    def get(self, server: SmtpServer) -> SmtpSession:
        """An open session; raises ConnectionFailed."""
        entry = self.sessions.pop(server.id, None)
        if entry is not None:
            fingerprint, session = entry
            if fingerprint == _fingerprint(server) and session.still_good():
                self.sessions[server.id] = entry
                return session
            session.close()
        session = SmtpSession(server)
        session.open()
        self.sessions[server.id] = (_fingerprint(server), session)
        return session

    def discard(self, server: SmtpServer) -> None:
        entry = self.sessions.pop(server.id, None)
        if entry is not None:
            entry[1].close()

    def close_all(self) -> None:
        for _fp, session in self.sessions.values():
            session.close()
        self.sessions.clear()


pool = ConnectionPool()
