"""Accepting a message: what the caller asks for (validation, suppression, idempotency) and
writing the outbox row, after which the workers are woken. Who may ask is hub.access.
HTTP lives in api/; this module is plain functions so the SMTP submission server, the
admin and tests use the same rules."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from email.headerregistry import Address
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, make_msgid
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import headertext, queries, quota
from .calendar import parse_event
from .delivery.message import SMTP_POLICY, ascii_address, first_address, relay_message
from .delivery.outbox import wake_workers
from .models import App, Attachment, IdempotencyKey, SendLog
from .refusals import REFUSALS, Refusal  # noqa: F401  (re-exported for api/ and tests)

# --- the sender ----------------------------------------------------------------------------

def primary_sender(app: App) -> str:
    """The sender address of the app's first enabled server; refuses when the app has no
    server, or none enabled."""
    servers = queries.app_servers(app.pk)
    if not servers:
        raise Refusal("no_smtp_server")
    for enabled, from_email, username in servers:
        if enabled:
            return from_email or username  # as SmtpServer.sender
    raise Refusal("smtp_server_disabled")


# --- validation --------------------------------------------------------------------------

def _check_header(field: str, value: str, limit: int) -> str:
    # Every line break Python's email package knows, NUL and the other controls: one
    # definition (hub.headertext) for the API, SMTP, the calendar and the builders.
    if headertext.has_controls(value):
        raise Refusal("header_injection", f"{field} contains a line break or control character")
    if len(value) > limit:
        raise Refusal("too_large", f"{field} is longer than {limit} characters")
    return value


def parse_address_list(field: str, value: str, default_name: str = "") -> list[Address]:
    """`a@b.com, "Name" <c@d.com>` -> Addresses. IDN domains are accepted (sent as
    punycode); non-ASCII local parts are refused, since they need SMTPUTF8 end to end."""
    _check_header(field, value, 64 * 1024)
    if not value.strip():
        return []  # an absent field (cc, bcc, reply_to usually): nothing to parse
    if value.count("@") > settings.HUB_MAX_RECIPIENTS * 2:  # cheap bound before parsing
        raise Refusal("too_many_recipients", f"{field}: at most {settings.HUB_MAX_RECIPIENTS} addresses")
    result: list[Address] = []
    seen: set[str] = set()
    for name, addr in getaddresses([value]):
        if not name and not addr:
            continue
        try:
            # getaddresses drops spaces inside an address ("a@exa mple.com" -> "a@example.com");
            # a mistyped address must be refused, not silently sent to someone else.
            if addr not in value:
                raise ValueError("address altered by parsing")
            validate_email(addr)
            ascii_address(addr)  # the form delivery sends; UnicodeError (a ValueError) when the domain has none
            if len(name) > settings.HUB_MAX_NAME_CHARS:
                raise ValueError("display name too long")
            address = _address(name or default_name, addr)
        except (ValidationError, ValueError, IndexError) as exc:
            shown = addr or name
            raise Refusal("invalid_address", f"{field}: {shown!r} is not a valid email address") from exc
        if addr.lower() not in seen:
            seen.add(addr.lower())
            result.append(address)
    if not result and value.strip():
        raise Refusal("invalid_address", f"{field}: {value[:100]!r} is not a valid email address")
    return result


# A dot-atom local part (RFC 5322) needs no quoting: the Address is built from its parts, which
# skips the email package's addr-spec parser (the larger part of a batch message's accept cost).
_DOT_ATOM_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def _address(name: str, addr: str) -> Address:
    local, _, domain = addr.rpartition("@")
    if _DOT_ATOM_LOCAL.match(local):
        return Address(display_name=name, username=local, domain=domain)
    return Address(display_name=name, addr_spec=addr)


def format_address_list(addresses: list[Address]) -> str:
    return ", ".join(str(a) for a in addresses)


@dataclass
class FileIn:
    filename: str
    content_type: str
    content: bytes


@dataclass
class SendRequest:
    """The fields of a send, as strings, exactly as the caller gave them."""

    to: str = ""
    subject: str = ""
    message: str = ""
    to_name: str = ""
    from_name: str = ""
    cc: str = ""
    bcc: str = ""
    reply_to: str = ""
    text: str = ""
    idempotency_key: str = ""
    attachments: list[FileIn] = field(default_factory=list)
    # Calendar event fields without their `event_` prefix (uid, start, ...); None: no event.
    event: dict[str, str] | None = None


_TOKEN_CHARS = re.compile(r"^[\w!#$&^.+-]+/[\w!#$&^.+-]+$")


def _check_attachments(files: list[FileIn]) -> list[FileIn]:
    if len(files) > settings.HUB_MAX_ATTACHMENTS:
        raise Refusal("too_many_attachments", f"at most {settings.HUB_MAX_ATTACHMENTS} attachments")
    total = 0
    checked = []
    for f in files:
        name = f.filename.strip().replace("\\", "/").rsplit("/", 1)[-1]  # no client paths
        if not name or len(name) > 255 or headertext.has_controls(name) or '"' in name:
            raise Refusal("invalid_attachment", f"bad attachment file name {f.filename[:80]!r}")
        ctype = (f.content_type or "").split(";")[0].strip().lower() or "application/octet-stream"
        if not _TOKEN_CHARS.match(ctype):
            ctype = "application/octet-stream"
        total += len(f.content)
        # Too big is not too many: each limit has its own refusal, so the caller knows which.
        if len(f.content) > settings.HUB_MAX_ATTACHMENT_BYTES:
            raise Refusal("attachment_too_large", f"{name!r} is over {settings.HUB_MAX_ATTACHMENT_BYTES} bytes "
                                                  "(HUB_MAX_ATTACHMENT_BYTES)")
        if total > settings.HUB_MAX_ATTACHMENTS_TOTAL_BYTES:
            raise Refusal("attachment_too_large", f"attachments over {settings.HUB_MAX_ATTACHMENTS_TOTAL_BYTES} "
                                                  "bytes in all (HUB_MAX_ATTACHMENTS_TOTAL_BYTES)")
        checked.append(FileIn(name, ctype, f.content))
    return checked


def validate(req: SendRequest) -> dict:
    """Check a request and return the SendLog fields it becomes; raises Refusal."""
    if not req.to.strip():
        raise Refusal("to_required")
    if not req.subject.strip():
        raise Refusal("subject_required")
    if not req.message.strip():
        raise Refusal("message_required")
    subject = _check_header("subject", req.subject.strip(), settings.HUB_MAX_SUBJECT_CHARS)
    to_name = _check_header("to_name", req.to_name.strip(), settings.HUB_MAX_NAME_CHARS)
    from_name = _check_header("from_name", req.from_name.strip(), settings.HUB_MAX_NAME_CHARS)
    for name, body in (("message", req.message), ("text", req.text)):
        if "\x00" in body:
            raise Refusal("invalid_field", f"{name} contains a NUL character")
        if len(body.encode("utf-8", "surrogatepass")) > settings.HUB_MAX_BODY_BYTES:
            raise Refusal("too_large", f"{name} is larger than {settings.HUB_MAX_BODY_BYTES} bytes")
    to = parse_address_list("to", req.to, default_name=to_name)
    cc = parse_address_list("cc", req.cc)
    bcc = parse_address_list("bcc", req.bcc)
    reply_to = parse_address_list("reply_to", req.reply_to)
    if len(to) + len(cc) + len(bcc) > settings.HUB_MAX_RECIPIENTS:
        raise Refusal("too_many_recipients", f"at most {settings.HUB_MAX_RECIPIENTS} recipients in all")
    attachments = _check_attachments(req.attachments)
    event = parse_event(req.event, subject) if req.event is not None else None
    return {
        "attachments": attachments,
        "event": event,
        "to": format_address_list(to),
        "to_name": to_name,
        "cc": format_address_list(cc),
        "bcc": format_address_list(bcc),
        "reply_to": format_address_list(reply_to),
        "subject": subject,
        "html_body": req.message,
        "text_body": req.text,
        "from_name": from_name,
    }


@lru_cache(maxsize=2048)
def _addresses_of(text: str) -> tuple[str, ...]:
    """The addresses of a validated (formatted) address list. Cached: the quota count and the
    suppression check of one message (or of a batch's 500) read the same fields back to back."""
    return tuple(addr for _name, addr in getaddresses([text]) if addr) if text else ()


def envelope_addresses(fields: dict) -> list[str]:
    """The validated fields' envelope recipients (to + cc + bcc), as delivery sends them."""
    return [addr for name in ("to", "cc", "bcc") for addr in _addresses_of(fields[name])]


def recipient_count(fields: dict) -> int:
    """The quota a message takes: one unit per envelope recipient (to + cc + bcc, as delivery
    sends them: an address repeated inside one field was removed by validation)."""
    return len(envelope_addresses(fields))


def check_suppressed(app: App, fields: dict) -> None:
    addresses = {addr.lower() for addr in envelope_addresses(fields)}
    hit = queries.suppressed(app.pk, addresses)
    if hit:
        raise Refusal("recipient_suppressed", f"suppressed (bounce, complaint or unsubscribe): {', '.join(hit)}")


IDEMPOTENCY_TTL = timedelta(hours=24)


def _request_hash(req: SendRequest) -> str:
    payload = {k: v for k, v in vars(req).items() if k not in ("idempotency_key", "attachments")}
    payload["attachments"] = [[f.filename, f.content_type, hashlib.sha256(f.content).hexdigest()]
                              for f in req.attachments]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _replay(app: App, key: str, request_hash: str) -> SendLog | None:
    """The message an earlier request with this key created, or None; 409 when the key
    was used for a different request."""
    entry = IdempotencyKey.objects.filter(app=app, key=key).select_related("log").first()
    if entry is None:
        return None
    if timezone.now() - entry.created_at > IDEMPOTENCY_TTL:
        entry.delete()  # expired: the key may name a new request
        return None
    if entry.request_hash != request_hash:
        raise Refusal("idempotency_conflict", "this Idempotency-Key was used with a different payload")
    return entry.log


def _replayed(log: SendLog) -> SendLog:
    log.replayed = True
    return log


def accept(app: App, req: SendRequest, client_ip: str | None = None) -> SendLog:
    """Validate and queue one message: the SendLog row (the outbox) is committed, then the
    workers are woken (hub.delivery.outbox.wake_workers); should that fail, the sweeper wakes them
    within a minute or two. The row's `replayed` attribute is True when an earlier request
    with the same Idempotency-Key made it (then nothing new was written)."""
    key = req.idempotency_key.strip()
    if len(key) > 255 or headertext.has_controls(key):
        raise Refusal("invalid_field", "Idempotency-Key: at most 255 characters on one line")
    request_hash = _request_hash(req) if key else ""
    if key and (earlier := _replay(app, key, request_hash)):
        return _replayed(earlier)
    sender = primary_sender(app)
    fields = validate(req)
    check_suppressed(app, fields)
    fields["from_name"] = fields["from_name"] or app.from_name or app.name
    attachments = fields.pop("attachments")
    fields["attachment_count"] = len(attachments)
    log = SendLog(app=app, from_email=sender, message_id=make_msgid(domain=settings.HUB_DOMAIN),
                  client_ip=client_ip, idempotency_key=key, **fields)
    # The account's service period is checked from what queries.app() read with the app; a
    # metered account's quota is taken in the transaction that writes the row (hub.quota).
    terms = quota.terms_of(app)
    charged_on = quota.day_of(log.created_at)
    quota.check_terms(terms, charged_on)
    if terms.metered:
        log.quota_charged = recipient_count(fields)
    # Prepared first, so that SQLite's write lock is held only while the statements run.
    insert = queries.Insert(log)
    try:
        if not attachments and not key and not terms.metered:
            insert.run()  # a single statement needs no transaction of its own
        else:
            with transaction.atomic():
                if terms.metered and quota.reserve(app.account_id, log.quota_charged, charged_on) != log.quota_charged:
                    log.quota_charged = 0  # became unlimited meanwhile: took nothing
                    insert = queries.Insert(log)
                insert.run()
                if attachments:
                    Attachment.objects.bulk_create([
                        Attachment(log=log, filename=f.filename, content_type=f.content_type, content=f.content,
                                   size=len(f.content)) for f in attachments])
                if key:
                    IdempotencyKey.objects.create(app=app, key=key, request_hash=request_hash, log=log)
    except IntegrityError:
        # The same key arrived twice at once and the other request won: answer as it did.
        earlier = _replay(app, key, request_hash) if key else None
        if earlier is None:
            raise
        return _replayed(earlier)
    wake_workers()  # after the commit: a drain must be able to see the row
    log.replayed = False
    return log


# --- SMTP submissions ------------------------------------------------------------------------

def check_recipient(app: App, address: str) -> str:
    """One envelope recipient of an SMTP submission: valid, ASCII local part, not
    suppressed. Returns it as given; raises Refusal."""
    if headertext.has_controls(address) or len(address) > 254:
        raise Refusal("invalid_address", f"{address[:80]!r} is not a valid email address")
    try:
        validate_email(address)
        ascii_address(address)  # the form delivery sends; UnicodeError (a ValueError) when the domain has none
    except (ValidationError, ValueError) as exc:
        raise Refusal("invalid_address", f"{address!r} is not a valid email address") from exc
    if queries.suppressed(app.pk, {address.lower()}):
        raise Refusal("recipient_suppressed", f"{address} is suppressed (bounce, complaint or unsubscribe)")
    return address


def _storable(text: str) -> str:
    """Text the database takes: undecodable bytes (kept by the email package as lone
    surrogates) become U+FFFD. For the audit view only; the raw message is relayed as is."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _decoded(msg, name: str) -> str:
    try:
        value = msg.get(name)
    except (LookupError, ValueError, IndexError):
        return ""
    return _storable(str(value).replace("\r", " ").replace("\n", " ")) if value is not None else ""


# C0 controls but TAB, CR, LF, and DEL: never valid in a header line (RFC 5322 2.2).
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_relayable(log: SendLog, sender: str) -> None:
    """Build the message exactly as delivery will (hub.delivery.message.relay_message) and
    serialize it once: whatever the client sent, a message the hub accepts can be sent.
    Refuses (SMTP 554) a header section with control characters, and anything the builder
    or the generator cannot handle, instead of a message that fails on every attempt."""
    raw = bytes(log.raw_message)
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    if _CONTROL_BYTES.search(head):
        raise Refusal("malformed_message", "a header contains a control character")
    try:
        relay_message(log, sender).as_bytes(policy=SMTP_POLICY)
    except Exception as exc:  # any failure here would be a failure at every delivery attempt
        raise Refusal("malformed_message", f"the message cannot be relayed: {type(exc).__name__}") from exc


def accept_raw(app: App, rcpts: list[str], raw: bytes, client_ip: str | None = None) -> SendLog:
    """Queue a client's own MIME message (SMTP submission) for `rcpts`. The message is relayed
    as it is (see hub.delivery.message.relay_message); what the audit log shows is read from it."""
    import email
    from email import policy

    sender = primary_sender(app)
    if not rcpts:
        raise Refusal("to_required")
    if len(rcpts) > settings.HUB_MAX_RECIPIENTS:
        raise Refusal("too_many_recipients", f"at most {settings.HUB_MAX_RECIPIENTS} recipients")
    msg = email.message_from_bytes(raw, policy=policy.default)
    try:
        html = msg.get_body(("html",))
        text = msg.get_body(("plain",))
        html_body = html.get_content() if html is not None else ""
        text_body = text.get_content() if text is not None else ""
    except (LookupError, ValueError, AttributeError, IndexError):
        html_body, text_body = "", ""  # unreadable for the log; relayed anyway
    # The name as delivery will write it (the standard parser refuses names with line breaks).
    from_name = first_address(str(BytesHeaderParser(policy=compat32).parsebytes(raw).get("From", "")))[0]
    try:
        attachments = sum(1 for _ in msg.iter_attachments()) if msg.is_multipart() else 0
    except (LookupError, ValueError, AttributeError, IndexError):
        attachments = 0
    terms = quota.terms_of(app, fresh=True)  # an SMTP session's app may be old
    now = timezone.now()
    day = quota.day_of(now)  # the day charged is the row's own (refunds compare it)
    quota.check_terms(terms, day)
    log = SendLog(
        app=app,
        created_at=now,
        source=SendLog.Source.SMTP,
        from_email=sender,
        from_name=_storable(headertext.display_name(from_name, 200)),
        to=_decoded(msg, "To")[:10000] or ", ".join(rcpts),
        cc=_decoded(msg, "Cc")[:10000],
        rcpt_to=", ".join(rcpts),
        subject=_decoded(msg, "Subject")[:998],
        html_body=_storable(html_body),
        text_body=_storable(text_body),
        attachment_count=min(attachments, 32767),
        raw_message=raw,
        message_id=_decoded(msg, "Message-ID")[:255] or make_msgid(domain=settings.HUB_DOMAIN),
        client_ip=client_ip,
    )
    check_relayable(log, sender)
    with transaction.atomic():
        # One unit per envelope recipient, taken with the row: a refusal writes nothing.
        log.quota_charged = quota.reserve(app.account_id, len(rcpts), day) if terms.metered else 0
        log.save(force_insert=True)
    wake_workers()
    log.replayed = False
    return log
