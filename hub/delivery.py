"""Delivery: claim outbox rows, build the MIME message, hand it to the SMTP server, record
exactly what the server said. One task may carry a batch of rows over one connection per
server (campaigns and the benchmark need that; the API sends batches of one)."""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, getaddresses

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from .crypto import DecryptionError
from .models import SendLog, SmtpServer
from .textify import html_to_text

log = logging.getLogger(__name__)


# --- the message ---------------------------------------------------------------------------

def ascii_address(addr: str) -> str:
    """user@bücher.example -> user@xn--bcher-kva.example (IDN domains go out as punycode)."""
    local, _, domain = addr.rpartition("@")
    try:
        domain.encode("ascii")
    except UnicodeEncodeError:
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


def _header_text(value: str) -> str | Header:
    try:
        value.encode("ascii")
        return value
    except UnicodeEncodeError:
        return Header(value, "utf-8")


def _address_header(text: str) -> str:
    return ", ".join(formataddr((name, ascii_address(addr)), charset="utf-8") for name, addr in getaddresses([text]))


def envelope_recipients(row: SendLog) -> list[str]:
    rcpts: list[str] = []
    for text in (row.to, row.cc, row.bcc):
        if text:
            rcpts.extend(ascii_address(addr) for _name, addr in getaddresses([text]))
    return rcpts


def build_message(row: SendLog, sender: str) -> MIMEMultipart:
    # The legacy (compat32) email API: several times cheaper than the default policy's
    # EmailMessage and produces the same standard MIME (as Django's own mail does).
    msg = MIMEMultipart("alternative")
    msg["Subject"] = _header_text(row.subject)
    msg["From"] = formataddr((row.from_name, ascii_address(sender)), charset="utf-8")
    msg["To"] = _address_header(row.to)
    if row.cc:
        msg["Cc"] = _address_header(row.cc)
    if row.reply_to:
        msg["Reply-To"] = _address_header(row.reply_to)
    # Bcc never goes into a header: those recipients are only in the envelope.
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = row.message_id
    msg["X-SMTPHub-Log-ID"] = str(row.id)
    msg["X-SMTPHub-App-ID"] = str(row.app_id)
    text = row.text_body or html_to_text(row.html_body)
    msg.attach(MIMEText(text, "plain", "utf-8"))
    msg.attach(MIMEText(row.html_body, "html", "utf-8"))
    return msg


# --- the connection ------------------------------------------------------------------------

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


class SmtpSession:
    """One open, authenticated connection to one SMTP server."""

    def __init__(self, server: SmtpServer):
        self.server = server
        self.conn: smtplib.SMTP | None = None

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
                conn.login(server.username, password)
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            raise ConnectionFailed(f"authentication failed: {exc.smtp_code} {_reply_text(exc.smtp_error)}",
                                   exc.smtp_code, _reply_text(exc.smtp_error), transient=False) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise ConnectionFailed(f"server refused the session: {exc.smtp_code} {_reply_text(exc.smtp_error)}",
                                   exc.smtp_code, _reply_text(exc.smtp_error),
                                   transient=400 <= exc.smtp_code < 500) from exc
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            self.close()
            raise ConnectionFailed(f"cannot connect to {server.host}:{server.port}: "
                                   f"{type(exc).__name__}: {exc}") from exc

    def send(self, envelope_from: str, rcpts: list[str], data: str) -> Outcome:
        """One SMTP transaction. Per-recipient refusals are recorded; the message counts as
        sent when the server accepts it for at least one recipient."""
        conn = self.conn
        assert conn is not None
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
            code, resp = conn.data(data)
            text = _reply_text(resp)
            if code != 250:
                return Outcome(SendLog.Status.FAILED, code, text, f"message refused: {code} {text}",
                               refused, transient=400 <= code < 500)
            return Outcome(SendLog.Status.SENT, code, text, "", refused)
        except smtplib.SMTPServerDisconnected as exc:
            self.close()
            return Outcome(SendLog.Status.FAILED, None, "", f"server disconnected: {exc}", transient=True)
        except smtplib.SMTPResponseException as exc:
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


# --- the task --------------------------------------------------------------------------------

def claim(log_ids: list[int]) -> list[SendLog]:
    """Atomically take the rows that are still waiting; rows another worker has, or that are
    already finished, are left alone (so a task delivered twice sends nothing twice)."""
    token = uuid.uuid4().hex
    now = timezone.now()
    SendLog.objects.filter(pk__in=log_ids, status__in=SendLog.CLAIMABLE).update(
        status=SendLog.Status.SENDING, claim_token=token, claimed_at=now, attempts=F("attempts") + 1
    )
    return list(SendLog.objects.filter(claim_token=token).select_related("app").order_by("id"))


def record(row: SendLog, server: SmtpServer | None, outcome: Outcome) -> None:
    row.status = outcome.status
    row.smtp_server = server
    if server is not None:
        row.from_email = server.sender
    row.smtp_code = outcome.smtp_code
    row.smtp_reply = outcome.smtp_reply[:4000]
    row.error = outcome.error[:4000]
    row.refused_recipients = outcome.refused
    row.next_attempt_at = None
    if outcome.status == SendLog.Status.SENT:
        row.sent_at = timezone.now()
    row.save(update_fields=["status", "smtp_server", "from_email", "smtp_code", "smtp_reply", "error",
                            "refused_recipients", "next_attempt_at", "sent_at", "updated_at"])


def _primary_server(row: SendLog, cache: dict[int, SmtpServer | None]) -> SmtpServer | None:
    if row.app_id not in cache:
        servers = [s for s in row.app.ordered_servers() if s.enabled]
        cache[row.app_id] = servers[0] if servers else None
    return cache[row.app_id]


def deliver_batch(log_ids: list[int]) -> None:
    rows = claim(log_ids)
    if not rows:
        return
    servers: dict[int, SmtpServer | None] = {}
    sessions: dict[int, SmtpSession] = {}
    pending = {row.id: row for row in rows}
    try:
        for row in rows:
            server = _primary_server(row, servers)
            if server is None:
                record(row, None, Outcome(SendLog.Status.FAILED, error="no enabled SMTP server for this app"))
                del pending[row.id]
                continue
            outcome = _deliver_one(row, server, sessions)
            record(row, server, outcome)
            del pending[row.id]
    finally:
        for session in sessions.values():
            session.close()
        # Whatever went wrong above, no claimed row stays in `sending`.
        for row in pending.values():
            log.exception("delivery of SendLog %s aborted", row.id)
            record(row, None, Outcome(SendLog.Status.FAILED, error="internal error during delivery (see worker log)"))


def _deliver_one(row: SendLog, server: SmtpServer, sessions: dict[int, SmtpSession]) -> Outcome:
    session = sessions.get(server.id)
    if session is None or not session.is_open:
        session = SmtpSession(server)
        sessions[server.id] = session
        try:
            session.open()
        except ConnectionFailed as exc:
            return Outcome(SendLog.Status.FAILED, exc.smtp_code, exc.smtp_reply, exc.error, transient=exc.transient)
    data = build_message(row, server.sender).as_string()
    return session.send(ascii_address(server.sender), envelope_recipients(row), data)
