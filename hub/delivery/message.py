"""The message: the MIME a row becomes on the wire (built from its fields, or a client's own
message relayed with the hub's From policy), its envelope recipients, and the header-safety
helpers the accepting side shares (ascii_address, one_line)."""

from __future__ import annotations

import re
import uuid
from email import encoders
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import compat32
from email.utils import formataddr, formatdate, getaddresses, parseaddr

from ..calendar import build_ics
from ..models import Attachment, SendLog
from ..textify import html_to_text

# smtplib sends bytes as they are: lines must already end in CRLF.
SMTP_POLICY = compat32.clone(linesep="\r\n")


def ascii_address(addr: str) -> str:
    """user@bücher.example -> user@xn--bcher-kva.example (IDN domains go out as punycode)."""
    local, _, domain = addr.rpartition("@")
    try:
        domain.encode("ascii")
    except UnicodeEncodeError:
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


# Every character Python's email package (str.splitlines) treats as a line break.
_LINE_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def one_line(value: str) -> str:
    """Header text on one line: the API refuses line breaks, but names typed in the admin
    or stored by older versions must not split a header either."""
    return _LINE_BREAKS.sub(" ", value)


def _header_text(value: str) -> str | Header:
    value = one_line(value)
    try:
        value.encode("ascii")
        return value
    except UnicodeEncodeError:
        return Header(value, "utf-8")


def _address_header(text: str) -> str:
    return ", ".join(formataddr((one_line(name), ascii_address(addr)), charset="utf-8")
                     for name, addr in getaddresses([one_line(text)]))


def envelope_recipients(row: SendLog) -> list[str]:
    texts = (row.rcpt_to,) if row.rcpt_to else (row.to, row.cc, row.bcc)
    return [ascii_address(addr) for text in texts if text for _name, addr in getaddresses([text])]


def _attachment_part(filename: str, content_type: str, content: bytes) -> MIMEBase:
    maintype, _, subtype = content_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(content)
    encoders.encode_base64(part)
    try:
        filename.encode("ascii")
        part.add_header("Content-Disposition", "attachment", filename=filename)
    except UnicodeEncodeError:
        part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", filename))  # RFC 2231
    return part


def _boundary() -> str:
    # Chosen here rather than by the generator, which compiles a regex per message to
    # check its boundary against the text. Every part we build is base64 (MIMEText with
    # utf-8, attachments), and "=_" never occurs in base64 or quoted-printable.
    return f"=_smtphub_{uuid.uuid4().hex}"


def build_message(row: SendLog, sender: str) -> Message:
    # The legacy (compat32) email API: several times cheaper than the default policy's
    # EmailMessage and produces the same standard MIME (as Django's own mail does).
    if row.raw_message is not None:
        return relay_message(row, sender)
    body = MIMEMultipart("alternative", boundary=_boundary())
    text = row.text_body or html_to_text(row.html_body)
    body.attach(MIMEText(text, "plain", "utf-8"))
    body.attach(MIMEText(row.html_body, "html", "utf-8"))
    extra: list[Message] = []
    if row.event:
        attendees = [pair for text in (row.to, row.cc) if text for pair in getaddresses([text])]
        ics = build_ics(row.event, (row.from_name, sender), attendees).decode("utf-8")
        # Calendar clients read the text/calendar alternative; others get the .ics file.
        calendar = MIMEText(ics, "calendar", "utf-8")
        calendar.set_param("method", row.event["method"])
        body.attach(calendar)
        extra.append(_attachment_part("invite.ics", "application/ics", ics.encode("utf-8")))
    if row.attachment_count:
        extra += [_attachment_part(a.filename, a.content_type, bytes(a.content))
                  for a in Attachment.objects.filter(log=row).order_by("id")]
    if extra:
        msg = MIMEMultipart("mixed", boundary=_boundary())
        msg.attach(body)
        for part in extra:
            msg.attach(part)
    else:
        msg = body
    msg["Subject"] = _header_text(row.subject)
    msg["From"] = formataddr((one_line(row.from_name), ascii_address(sender)), charset="utf-8")
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
    return msg


def relay_message(row: SendLog, sender: str) -> Message:
    """A client's own MIME message (SMTP submission), relayed intact but for the From policy:
    providers accept only their account's address in From, so a different From becomes
    `"Display name" <sender>` and the original address moves to Reply-To (unless the client
    set one). Bcc headers are dropped; Message-ID and Date are added when missing."""
    msg = BytesParser(policy=compat32).parsebytes(bytes(row.raw_message))
    name, addr = parseaddr(str(msg.get("From", "")))
    if addr.lower() != sender.lower():
        if addr and "Reply-To" not in msg:
            msg["Reply-To"] = msg["From"]
        del msg["From"]
        name = str(make_header(decode_header(name))) if name else ""
        msg["From"] = formataddr((name, ascii_address(sender)), charset="utf-8")
    del msg["Bcc"]
    if "Message-ID" not in msg:
        msg["Message-ID"] = row.message_id
    if "Date" not in msg:
        msg["Date"] = formatdate(localtime=True)
    del msg["X-SMTPHub-Log-ID"]
    msg["X-SMTPHub-Log-ID"] = str(row.id)
    return msg
