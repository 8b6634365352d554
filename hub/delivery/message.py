"""The message: the MIME a row becomes on the wire (built from its fields, or a client's own
message relayed with the hub's From policy), its envelope recipients, and the header-safety
helpers the accepting side shares (ascii_address, one_line)."""

from __future__ import annotations

import functools
import re
import secrets
from email import encoders
from email.charset import BASE64, QP, Charset
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import Compat32, compat32
from email.utils import formataddr, formatdate, getaddresses
from urllib.parse import quote

from django.conf import settings

from ..calendar import build_ics
from ..headertext import display_name, one_line
from ..models import Attachment, SendLog
from ..textify import html_to_text
from . import render, signing

# A header value the generator would write unchanged: printable ASCII words, single spaces.
_UNFOLDED = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")


class _SmtpPolicy(Compat32):
    """compat32, with a short cut for the common header: a value that already fits on one
    line as printable ASCII is written as it is. Why: compat32 runs every header through
    email.header.Header's folding, a fifth of a worker's CPU per message (15 headers);
    for such a value that folding returns it unchanged (checked on random values by
    hub/tests/test_message_policy.py), so the bytes are the same."""

    def _fold(self, name, value, sanitize):
        if (isinstance(value, str) and len(name) + 2 + len(value) <= (self.max_line_length or 0)
                and _UNFOLDED.fullmatch(value)):
            return f"{name}: {value}{self.linesep}"
        if not isinstance(value, Header):
            return super()._fold(name, value, sanitize)
        # An encoded header (a UTF-8 Subject, a From with a Chinese display name) is the same
        # in most messages of a sender: its folding, a tenth of a message's CPU, is kept.
        key = (name, self.linesep, self.max_line_length, value._headerlen, value._maxlinelen,
               value._continuation_ws, tuple((text, str(charset)) for text, charset in value._chunks))
        folded = _FOLDED.get(key)
        if folded is None:
            folded = super()._fold(name, value, sanitize)
            if len(_FOLDED) >= _FOLDED_MAX:
                _FOLDED.clear()  # bounded; refilled by the next messages
            _FOLDED[key] = folded
        return folded


# Folded encoded headers by their content (see _SmtpPolicy._fold).
_FOLDED: dict[tuple, str] = {}
_FOLDED_MAX = 4096


# smtplib sends bytes as they are: lines must already end in CRLF.
SMTP_POLICY = _SmtpPolicy(linesep="\r\n")


def ascii_address(addr: str) -> str:
    """user@bücher.example -> user@xn--bcher-kva.example (IDN domains go out as punycode)."""
    local, _, domain = addr.rpartition("@")
    try:
        domain.encode("ascii")
    except UnicodeEncodeError:
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


# one_line (hub.headertext) is also imported from here by older callers.
# Longest encoded word / unfolded run we write (RFC 2047 allows 75; RFC 5322 asks for 78).
_SHORT = 76
# "=?" in plain text would be read back as the start of an encoded word.
_PLAIN_HEADER_TEXT = re.compile(r"^(?!.*=\?)(?!.*  )[\x21-\x7e]+(?: [\x21-\x7e]+)*$")


def _plain_ok(value: str) -> bool:
    """Can `value` go out as it is and come back the same: printable ASCII, single spaces,
    no encoded-word look-alike, and every word short enough to fold between words."""
    return bool(_PLAIN_HEADER_TEXT.match(value)) and all(len(word) <= _SHORT - 20 for word in value.split(" "))


def header_text(value: str, header_name: str = "Subject") -> str | Header:
    """Unstructured header text (Subject): on one line, and either plain ASCII the generator
    can fold at spaces or RFC 2047 encoded words (each at most 75 characters), so that no
    line of the message ever exceeds 78 octets, whatever the text."""
    value = one_line(value)
    return value if _plain_ok(value) else Header(value, "utf-8", maxlinelen=_SHORT, header_name=header_name)


def address_header(pairs: list[tuple[str, str]], header_name: str = "Reply-To") -> Header:
    """An address list header from (display name, address) pairs. Names are sanitized
    (headertext.display_name) and written quoted when plain ASCII, else as encoded words
    split to fit the line; addresses as ASCII (punycode domains). Never a line over 78
    octets unless an address alone is longer."""
    header = Header(maxlinelen=_SHORT, header_name=header_name)
    last = len(pairs) - 1
    for i, (raw_name, raw_addr) in enumerate(pairs):
        # Header puts one space between chunks: none is written here.
        name, addr = display_name(raw_name), ascii_address(raw_addr)
        comma = "," if i < last else ""
        if name and _plain_ok(name) and len(name) <= _SHORT - 20:
            header.append(formataddr((name, addr)) + comma, "us-ascii")  # quoted when it holds specials
        elif name:
            header.append(name, "utf-8")
            header.append(f"<{addr}>{comma}", "us-ascii")
        else:
            header.append(addr + comma, "us-ascii")
    return header


def _address_header(text: str, header_name: str) -> Header:
    return address_header(getaddresses([one_line(text)]), header_name)


def envelope_recipients(row: SendLog) -> list[str]:
    texts = (row.rcpt_to,) if row.rcpt_to else (row.to, row.cc, row.bcc)
    return list(_envelope(texts))


@functools.lru_cache(maxsize=1024)
def _envelope(texts: tuple[str, ...]) -> tuple[str, ...]:
    # Cached: one delivery asks up to five times (suppression check, send, outcome events).
    return tuple(ascii_address(addr) for text in texts if text for _name, addr in getaddresses([text]))


def _attachment_part(filename: str, content_type: str, content: bytes) -> MIMEBase:
    maintype, _, subtype = content_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(content)
    encoders.encode_base64(part)
    # Content-Disposition's filename (RFC 2183 / RFC 2231) for current clients, and the
    # Content-Type `name` parameter older ones (Outlook 2007, some webmail) still read,
    # encoded per RFC 2047 when it is not ASCII.
    disposition = _rfc2231_param("filename", filename)
    part.replace_header("Content-Type", f"{maintype or 'application'}/{subtype or 'octet-stream'}; "
                                        f"{_rfc2047_param('name', filename)}")
    part.add_header("Content-Disposition", f"attachment; {disposition}")
    return part


_ATTRIBUTE_CHARS = "!#$&+-.^_`|~"  # RFC 2231 attribute-char beyond letters and digits


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rfc2231_param(param: str, value: str) -> str:
    """`filename="a.pdf"`, or for a non-ASCII or long value `filename*=utf-8''%E6...`, split
    when long into RFC 2231 continuations of at
    most 55 characters each (`filename*0*=utf-8''%E6...; filename*1*=...`), so that no line
    of the header is over 78 octets however long the name."""
    if _plain_ok(value) and len(value) <= _SHORT - 20:
        return f"{param}={_quoted(value)}"
    encoded = quote(value.encode("utf-8"), safe=_ATTRIBUTE_CHARS)
    if len(encoded) <= 55:  # one parameter: what most clients expect
        return f"{param}*=utf-8''{encoded}"
    chunks, start = [], 0
    while start < len(encoded):
        end = min(start + 55, len(encoded))
        while end < len(encoded) and "%" in encoded[end - 2:end]:  # never split a %XX
            end -= 1
        chunks.append(encoded[start:end])
        start = end
    charset = "utf-8''"  # charset'language' before the first continuation only
    return "; ".join(f"{param}*{i}*={charset if i == 0 else ''}{chunk}" for i, chunk in enumerate(chunks))


def _rfc2047_param(param: str, value: str) -> str:
    if _plain_ok(value) and len(value) <= _SHORT - 20:
        return f"{param}={_quoted(value)}"
    # Encoded words inside the quoted string, folded between words: what mail clients write.
    return f"{param}=\"{Header(value, 'utf-8', maxlinelen=_SHORT - 8).encode(linesep=chr(10))}\""


def _boundary() -> str:
    # Chosen here rather than by the generator, which compiles a regex per message to
    # check its boundary against the text. Every part we build is base64 (MIMEText with
    # utf-8, attachments), and "=_" never occurs in base64 or quoted-printable.
    # 64 random bits (distinct from the other boundary of the message is all it needs) keep
    # `Content-Type: multipart/alternative; boundary="..."` within 78 characters: one line,
    # which SMTP_POLICY writes without running the folding.
    return f"=_smtphub_{secrets.token_hex(8)}"


def wire_bytes(row: SendLog, sender: str) -> bytes:
    """The message as it leaves the hub: built for `sender` (its From fallback), written for
    SMTP and signed (DKIM, by a registered EDM signer, hub.delivery.signing) after the last
    change to its headers, so the signature covers exactly what is sent."""
    return signing.sign(row, build_message(row, sender).as_bytes(policy=SMTP_POLICY))


def build_message(row: SendLog, sender: str) -> Message:
    # The legacy (compat32) email API: several times cheaper than the default policy's
    # EmailMessage and produces the same standard MIME (as Django's own mail does).
    if row.raw_message is not None:
        return relay_message(row, sender)
    if row.campaign_id is not None:
        return campaign_message(row, sender)
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
    msg["Subject"] = header_text(row.subject)
    msg["From"] = address_header([(row.from_name, sender)], "From")
    msg["To"] = _address_header(row.to, "To")
    if row.cc:
        msg["Cc"] = _address_header(row.cc, "Cc")
    if row.reply_to:
        msg["Reply-To"] = _address_header(row.reply_to, "Reply-To")
    # Bcc never goes into a header: those recipients are only in the envelope.
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = row.message_id
    msg["X-SMTPHub-Log-ID"] = str(row.id)
    msg["X-SMTPHub-App-ID"] = str(row.app_id)
    return msg


def rendered_message(*, subject: str, html: str, text: str, encoding: str, sender: str, from_name: str, to: str,
                     to_name: str = "", reply_to: str = "", headers: dict[str, str] | None = None,
                     attachments: list[tuple[str, str, bytes]] = ()) -> Message:
    """A rendered template's mail: text and HTML alternatives in `encoding` ("base64" or
    "quoted-printable"), attachments as (file name, content type, bytes), Subject, From, To,
    Reply-To and extra headers (each on one line). The caller adds Date and Message-ID.
    A campaign row's message (campaign_message) and a template's check and test message
    (hub.mailtemplates.mime) are built by this one function, so they are the same mail."""
    charset = Charset("utf-8")
    charset.body_encoding = QP if encoding == "quoted-printable" else BASE64
    body = MIMEMultipart("alternative", boundary=_boundary())
    body.attach(MIMEText(text, "plain", charset))
    body.attach(MIMEText(html, "html", charset))
    if attachments:
        msg = MIMEMultipart("mixed", boundary=_boundary())
        msg.attach(body)
        for filename, content_type, content in attachments:
            msg.attach(_attachment_part(filename, content_type, content))
    else:
        msg = body
    msg["Subject"] = header_text(subject)
    msg["From"] = address_header([(from_name, sender)], "From")
    msg["To"] = address_header([(to_name, to)], "To")
    if reply_to:
        msg["Reply-To"] = _address_header(reply_to, "Reply-To")
    for name, value in (headers or {}).items():
        # (A URL longer than the line goes on a folded line of its own: legal FWS.)
        msg[name] = one_line(value)
    return msg


def campaign_message(row: SendLog, sender: str) -> Message:
    """A campaign row: its content comes from the registered renderer (hub.delivery.render),
    in the template's transfer encoding; headers as every message of the hub. From is the
    renderer's from_email when it gives one (a verified domain's mailbox), else `sender`;
    the envelope sender is the caller's either way."""
    parts = render.render(row)
    msg = rendered_message(subject=parts.subject, html=parts.html, text=parts.text, encoding=parts.encoding,
                           sender=parts.from_email or sender, from_name=parts.from_name, to=row.to, to_name=parts.to_name,
                           reply_to=parts.reply_to, headers=parts.headers, attachments=parts.attachments)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = row.message_id
    msg["X-SMTPHub-Log-ID"] = str(row.id)
    msg["X-SMTPHub-App-ID"] = str(row.app_id)
    return msg


# Headers a client may not set on a relayed message: the hub's own (X-SMTPHub-*, set below),
# Bcc (would disclose blind recipients), and those a receiving provider judges the hub by
# but that only the hub or the receiving side may write: Sender (the hub sends as its own
# From; a client's Sender would claim another mailbox "on behalf of"), Return-Path (written
# by the final delivery from the envelope), Authentication-Results (a forged verdict).
# Received and DKIM-Signature stay: trace lines and a client's own signature are legitimate.
DROPPED_CLIENT_HEADERS = ("Bcc", "Sender", "Return-Path", "Authentication-Results")
HUB_HEADER_PREFIX = "x-smtphub-"


_ENCODED_WORDS = re.compile(r"=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=(?:\s+=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=)*")


def _decoded_as_quoted(match: re.Match) -> str:
    try:
        text = str(make_header(decode_header(match.group(0))))
    except (LookupError, ValueError):  # unknown charset or undecodable bytes: left as written
        return match.group(0)
    return _quoted(display_name(text))


def first_address(value: str) -> tuple[str, str]:
    """(display name, address) of the first address in a From header as a client wrote it.
    Each run of RFC 2047 encoded words is decoded, sanitized (no line break, NUL or control
    survives) and put back as a quoted string before the address list is parsed, so a `:`,
    `<` or line break inside an encoded word is text, never syntax. ("", "") when there is
    no address."""
    pairs = [(name, addr) for name, addr in getaddresses([_ENCODED_WORDS.sub(_decoded_as_quoted, one_line(value))])
             if addr or name]
    if not pairs:
        return "", ""
    name, addr = pairs[0]
    return name, addr if "@" in addr else ""


def relay_message(row: SendLog, sender: str) -> Message:
    """A client's own MIME message (SMTP submission), relayed intact but for the hub's header
    policy: From is always rewritten as `display name <sender>` (providers accept only their
    account's address; the name decoded and sanitized like the API's from_name), a different
    original address moves to Reply-To (unless the client set one); Bcc, Sender, Return-Path,
    Authentication-Results and every X-SMTPHub-* header are dropped and the hub's own
    X-SMTPHub-Log-ID / X-SMTPHub-App-ID set; Message-ID and Date are added when missing."""
    msg = BytesParser(policy=compat32).parsebytes(bytes(row.raw_message))
    name, addr = first_address(str(msg.get("From", "")))
    name = display_name(name, settings.HUB_MAX_NAME_CHARS)
    if addr and addr.lower() != sender.lower() and "Reply-To" not in msg:
        msg["Reply-To"] = address_header([(name, addr)], "Reply-To")
    del msg["From"]
    msg["From"] = address_header([(name, sender)], "From")
    for header in DROPPED_CLIENT_HEADERS:
        del msg[header]
    for header in {key for key in msg if key.lower().startswith(HUB_HEADER_PREFIX)}:
        del msg[header]
    if "Message-ID" not in msg:
        msg["Message-ID"] = row.message_id
    if "Date" not in msg:
        msg["Date"] = formatdate(localtime=True)
    msg["X-SMTPHub-Log-ID"] = str(row.id)
    msg["X-SMTPHub-App-ID"] = str(row.app_id)
    return msg
