"""Reading what comes back: delivery status notifications (RFC 3464, and the plain-text
bounces some MTAs still send) and complaint reports (ARF, RFC 5965), with the stdlib email
package only. Pure functions: bytes in, a Parsed report out; nothing is looked up or written
here (hub.inbound.process does that).

Shapes handled (samples in tests/samples, each with its origin):
- multipart/report; report-type=delivery-status with a message/delivery-status part
  (Postfix, Sendmail, Exchange/Outlook, Gmail, QQ/163/Aliyun and most others): per-recipient
  Final-Recipient / Original-Recipient / Action / Status / Diagnostic-Code;
- plain-text bounces (Exim, old Gmail, qmail-likes): X-Failed-Recipients header and the
  first SMTP reply in the body;
- multipart/report; report-type=feedback-report with a message/feedback-report part
  (Yahoo CFL, Outlook.com JMRP, AOL, Terra/Return Path FBLs): Feedback-Type, Original-Rcpt-To.
The returned message (message/rfc822 or text/rfc822-headers, or the copy in a plain body)
gives the identifiers: X-SMTPHub-Log-ID / X-SMTPHub-App-ID, Message-ID, Return-Path (VERP)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr

from hub.delivery import bounces

# Feedback types that are a recipient's complaint; "not-spam" and "auth-failure" (DMARC
# forensic reports) are not, and change nothing.
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})

_REPLY = re.compile(r"\b([45]\d\d)[\s-]+(?:(?:#)?([45]\.\d{1,3}\.\d{1,3})\s*)?(.{0,300})")
_HEADER_LINE = r"^{name}:[ \t]*(.+)$"
MAX_RECIPIENTS = 50  # a report naming more is cut here (a DSN covers one message's recipients)


@dataclass
class Recipient:
    email: str                 # lower-case
    action: str = "failed"     # failed / delayed / delivered / relayed / expanded
    status: str = ""           # enhanced status code, e.g. 5.1.1
    diagnostic: str = ""       # the remote server's reply, as the report gives it
    code: int | None = None    # its reply code when the diagnostic has one


@dataclass
class Parsed:
    kind: str                                  # "bounce", "complaint" or "other"
    recipients: list[Recipient] = field(default_factory=list)
    feedback_type: str = ""
    log_id: int | None = None                  # X-SMTPHub-Log-ID of the returned message
    app_id: int | None = None                  # X-SMTPHub-App-ID
    message_id: str = ""                       # Message-ID of the returned message
    return_paths: list[str] = field(default_factory=list)  # addresses that may be VERP ones


def _text(value) -> str:
    """A header value on one line, folding whitespace collapsed."""
    return " ".join(str(value or "").split())


def _address(value) -> str:
    """rfc822;user@example.com -> user@example.com (lower-case)."""
    text = _text(value)
    if ";" in text:
        text = text.split(";", 1)[1]
    return parseaddr(text.strip())[1].strip().lower()


def _reply_code(diagnostic: str) -> tuple[int | None, str]:
    """(reply code, enhanced status) found in a diagnostic such as "smtp; 550 5.1.1 ..."."""
    match = _REPLY.search(diagnostic)
    if not match:
        return None, bounces.status_code(diagnostic)
    return int(match.group(1)), match.group(2) or bounces.status_code(diagnostic)


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part (the
    email package parses the first into a list of blocks, the second into one message)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):
        # Some senders base64 the part or label it text: parse the text as header blocks.
        text = part.get_payload(decode=True) or b""
        chunks = re.split(r"\r?\n\r?\n", text.decode("utf-8", "replace"))
        return [HeaderParser(policy=compat32).parsestr(chunk) for chunk in chunks if chunk.strip()]
    return []


def _recipients_from_status(part: Message) -> list[Recipient]:
    found = []
    for block in _blocks(part)[1:]:  # the first block is per-message (Reporting-MTA, ...)
        email = _address(block.get("Final-Recipient")) or _address(block.get("Original-Recipient"))
        if not email:
            continue
        diagnostic = _text(block.get("Diagnostic-Code"))
        if ";" in diagnostic[:12]:
            diagnostic = diagnostic.split(";", 1)[1].strip()  # "smtp; 550 ..." -> "550 ..."
        code, enhanced = _reply_code(diagnostic)
        status = _text(block.get("Status"))[:20] or enhanced
        found.append(Recipient(email=email, action=_text(block.get("Action")).lower() or "failed",
                               status=status, diagnostic=diagnostic[:2000], code=code))
    return found[:MAX_RECIPIENTS]


def _identify(parsed: Parsed, headers: Message | None, text: str = "") -> None:
    """Fill the identifiers from the returned message's headers (or, for a plain bounce,
    from header lines in the copy quoted in its body)."""
    def header(name: str) -> str:
        if headers is not None and headers.get(name):
            return _text(headers.get(name))
        match = re.search(_HEADER_LINE.format(name=re.escape(name)), text, re.IGNORECASE | re.MULTILINE)
        return match.group(1).strip() if match else ""

    for name, attr in (("X-SMTPHub-Log-ID", "log_id"), ("X-SMTPHub-App-ID", "app_id")):
        value = header(name)
        if value.isdigit() and len(value) < 19:
            setattr(parsed, attr, int(value))
    parsed.message_id = header("Message-ID")[:255]
    return_path = _address(header("Return-Path"))
    if return_path:
        parsed.return_paths.append(return_path)


def _returned_headers(msg: Message) -> Message | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if ctype == "text/rfc822-headers":
            raw = part.get_payload(decode=True) or b""
            return HeaderParser(policy=compat32).parsestr(raw.decode("utf-8", "replace"))
    return None


def _body_text(msg: Message, limit: int = 200_000) -> str:
    chunks = []
    for part in msg.walk():
        if part.get_content_maintype() == "text" and part.get_content_type() != "text/html":
            payload = part.get_payload(decode=True) or b""
            chunks.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(chunks)[:limit]


def _plain_bounce(msg: Message, parsed: Parsed) -> None:
    """A bounce without a delivery-status part: the failed recipients from
    X-Failed-Recipients, the reason from the first SMTP reply in the text."""
    text = _body_text(msg)
    failed = [addr.lower() for _n, addr in getaddresses([_text(v) for v in msg.get_all("X-Failed-Recipients", [])])
              if "@" in addr]
    code, status, diagnostic = None, "", ""
    match = _REPLY.search(text)
    if match:
        code, status = int(match.group(1)), match.group(2) or ""
        diagnostic = _text(match.group(0))[:2000]
    for email in failed[:MAX_RECIPIENTS]:
        # Exim names each address before its own reply: prefer that one when present.
        own = re.search(re.escape(email) + r"[\s\S]{0,400}?" + _REPLY.pattern, text, re.IGNORECASE)
        if own:
            r_code, r_status = int(own.group(1)), own.group(2) or ""
            r_diag = _text(own.group(0)[own.group(0).find(own.group(1)):])[:2000]
            parsed.recipients.append(Recipient(email, "failed", r_status, r_diag, r_code))
        else:
            parsed.recipients.append(Recipient(email, "failed", status, diagnostic, code))
    if not failed and match:
        # No recipient named: process.py may still match a single-recipient message by VERP.
        parsed.recipients.append(Recipient("", "failed", status, diagnostic, code))
    _identify(parsed, None, text)


def parse(raw: bytes) -> Parsed:
    """One inbound message as a bounce, a complaint, or "other" (an auto-reply, spam, a
    report type we do not act on)."""
    msg = BytesParser(policy=compat32).parsebytes(raw)
    report_type = (msg.get_param("report-type") or "").lower() if msg.get_content_type() == "multipart/report" else ""
    status_part = feedback_part = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status") and status_part is None:
            status_part = part
        elif ctype == "message/feedback-report" and feedback_part is None:
            feedback_part = part
    if feedback_part is not None or report_type == "feedback-report":
        return _complaint(msg, feedback_part)
    if status_part is not None:
        parsed = Parsed(kind="bounce", recipients=_recipients_from_status(status_part))
        _identify(parsed, _returned_headers(msg), _body_text(msg))
        return parsed
    if msg.get_all("X-Failed-Recipients") or _looks_like_bounce(msg):
        parsed = Parsed(kind="bounce")
        _plain_bounce(msg, parsed)
        return parsed
    return Parsed(kind="other")


def _looks_like_bounce(msg: Message) -> bool:
    sender = _text(msg.get("From")).lower()
    subject = _text(msg.get("Subject")).lower()
    return ("mailer-daemon" in sender or "postmaster" in sender) and any(
        word in subject for word in ("undeliver", "delivery", "failure", "returned", "退信", "未能", "失败"))


def _complaint(msg: Message, part: Message | None) -> Parsed:
    fields = _blocks(part)[0] if part is not None and _blocks(part) else Message()
    feedback = _text(fields.get("Feedback-Type")).lower()[:40] or "abuse"
    parsed = Parsed(kind="complaint" if feedback in COMPLAINT_TYPES else "other", feedback_type=feedback)
    headers = _returned_headers(msg)
    rcpts = [_address(v) for v in fields.get_all("Original-Rcpt-To", [])]
    if not rcpts and headers is not None:
        # No Original-Rcpt-To (optional in RFC 5965): the returned message's To, which
        # process.py accepts only when it is one of the matched message's recipients
        # (Outlook.com JMRP redacts it; the matched message then decides).
        rcpts = [addr.lower() for _n, addr in getaddresses([_text(headers.get("To"))]) if "@" in addr]
    parsed.recipients = [Recipient(email, "complained") for email in rcpts if email][:MAX_RECIPIENTS]
    if not parsed.recipients:
        parsed.recipients = [Recipient("", "complained")]
    _identify(parsed, headers, _body_text(msg))
    mail_from = _address(fields.get("Original-Mail-From"))
    if mail_from:
        parsed.return_paths.append(mail_from)
    return parsed
