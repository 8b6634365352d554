"""Accepting a message: who is asking (credentials), what they ask for (validation), and
writing the outbox row together with its delivery task. HTTP lives in api/; this module is
plain functions so the SMTP submission server and tests can use the same rules."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from email.headerregistry import Address
from email.utils import getaddresses, make_msgid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from . import crypto
from .models import ApiRateCounter, App, IdempotencyKey, SendLog, Site, SmtpServer, Suppression, parse_networks
from .tasks import enqueue_delivery

# error code -> (HTTP status, the original system's message). The Chinese messages are the
# PHP system's own and stay as they are: integrators match on them.
REFUSALS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "请求格式错误"),
    "unknown_action": (400, "未知的操作"),
    "appid_required": (400, "appid 不能为空"),
    "appsecret_required": (400, "appsecret 不能为空"),
    "invalid_credentials": (401, "应用不存在"),
    "app_disabled": (403, "应用不可用"),
    "no_smtp_server": (503, "应用未绑定邮件服务"),
    "smtp_server_disabled": (503, "邮件服务不可用"),
    "to_required": (400, "收件人不能为空"),
    "subject_required": (400, "主题不能为空"),
    "message_required": (400, "内容不能为空"),
    "invalid_address": (400, "邮件地址无效"),
    "invalid_field": (400, "参数无效"),
    "header_injection": (400, "参数不能包含换行符"),
    "too_many_recipients": (413, "收件人过多"),
    "too_large": (413, "内容过大"),
    "id_required": (400, "id 不能为空"),
    "not_found": (404, "邮件不存在"),
    "ip_blocked": (403, "IP 已被禁止访问"),
    "ip_not_allowed": (403, "IP 不在应用的白名单内"),
    "rate_limited": (429, "请求过于频繁，请稍后再试"),
    "recipient_suppressed": (400, "收件人已被屏蔽（曾退信）"),
    "idempotency_conflict": (409, "Idempotency-Key 已用于不同的请求"),
}


class Refusal(Exception):
    """A request the hub will not act on. Nothing has been written when it is raised."""

    def __init__(self, error: str, detail: str = "", retry_after: int = 0) -> None:
        self.error = error
        self.http_status, self.msg = REFUSALS[error]
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(f"{error}: {detail}" if detail else error)


# --- credentials -------------------------------------------------------------------------

# Compared against when the AppID does not exist, so a wrong AppID costs the same time as
# a wrong secret and the two cannot be told apart.
_DUMMY_DIGEST = "0" * 64


def authenticate(appid: str, appsecret: str) -> App:
    appid, appsecret = appid.strip(), appsecret.strip()
    if not appid:
        raise Refusal("appid_required")
    if not appsecret:
        raise Refusal("appsecret_required")
    app = App.objects.filter(pk=int(appid)).first() if appid.isdigit() and len(appid) < 19 else None
    ok = crypto.secret_matches(appsecret, app.secret_digest if app else _DUMMY_DIGEST)
    if app is None or not ok:
        raise Refusal("invalid_credentials")
    if not app.enabled:
        raise Refusal("app_disabled")
    return app


def usable_servers(app: App) -> list[SmtpServer]:
    """The app's enabled servers, primary first; refuses when there are none."""
    servers = app.ordered_servers()
    if not servers:
        raise Refusal("no_smtp_server")
    enabled = [s for s in servers if s.enabled]
    if not enabled:
        raise Refusal("smtp_server_disabled")
    return enabled


# --- who may call ------------------------------------------------------------------------

def _in_networks(ip: str | None, text: str) -> bool:
    if not ip or not text.strip():
        return False
    address = ipaddress.ip_address(ip)
    return any(address in net for net in parse_networks(text) if net.version == address.version)


def check_blocklist(ip: str | None, site: Site) -> None:
    if _in_networks(ip, site.ip_blocklist):
        raise Refusal("ip_blocked", f"{ip} is on the site's IP blocklist")


def check_allowlist(app: App, ip: str | None) -> None:
    if app.allowed_ips.strip() and not _in_networks(ip, app.allowed_ips):
        raise Refusal("ip_not_allowed", f"{ip} is not in this app's allowed IPs")


def check_rate_limit(app: App) -> None:
    """Count this request against the app's per-minute API limit (shared by all web
    processes through the database); refuses with the seconds to wait when over."""
    limit = app.rate_limit_per_minute
    if not limit:
        return
    now = timezone.now()
    window = now.replace(second=0, microsecond=0)
    with transaction.atomic():
        counter, _created = ApiRateCounter.objects.get_or_create(app=app, window_start=window)
        counted = ApiRateCounter.objects.filter(pk=counter.pk, count__lt=limit).update(count=F("count") + 1)
    if not counted:
        retry_after = 60 - now.second
        raise Refusal("rate_limited", f"at most {limit} requests per minute", retry_after=retry_after)


# --- client IP ---------------------------------------------------------------------------

def _ip(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_ip(meta: dict, site: Site) -> str | None:
    """The caller's address. Forwarding headers are believed only when the direct peer is
    one of the site's trusted proxies: anyone else could forge them."""
    remote = _ip(meta.get("REMOTE_ADDR", ""))
    if remote is None or site.client_ip_mode == Site.ClientIpMode.REMOTE_ADDR:
        return str(remote) if remote else None
    trusted = parse_networks(site.trusted_proxies)

    def is_trusted(ip) -> bool:
        return any(ip in net for net in trusted if net.version == ip.version)

    if not is_trusted(remote):
        return str(remote)
    if site.client_ip_mode == Site.ClientIpMode.X_REAL_IP:
        real = _ip(meta.get("HTTP_X_REAL_IP", ""))
        return str(real or remote)
    # X-Forwarded-For: walk from the nearest hop back; the first untrusted hop is the client.
    hops = [h for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            break
        if not is_trusted(ip):
            return str(ip)
        remote = ip
    return str(remote)


# --- validation --------------------------------------------------------------------------

_FORBIDDEN_IN_HEADERS = ("\r", "\n", "\x00")


def _check_header(field: str, value: str, limit: int) -> str:
    if any(ch in value for ch in _FORBIDDEN_IN_HEADERS):
        raise Refusal("header_injection", f"{field} contains a line break or NUL")
    if len(value) > limit:
        raise Refusal("too_large", f"{field} is longer than {limit} characters")
    return value


def parse_address_list(field: str, value: str, default_name: str = "") -> list[Address]:
    """`a@b.com, "Name" <c@d.com>` -> Addresses. IDN domains are accepted (sent as
    punycode); non-ASCII local parts are refused, since they need SMTPUTF8 end to end."""
    _check_header(field, value, 64 * 1024)
    if value.count("@") > settings.HUB_MAX_RECIPIENTS * 2:  # cheap bound before parsing
        raise Refusal("too_many_recipients", f"{field}: at most {settings.HUB_MAX_RECIPIENTS} addresses")
    result: list[Address] = []
    seen: set[str] = set()
    for name, addr in getaddresses([value]):
        if not name and not addr:
            continue
        try:
            validate_email(addr)
            if len(name) > settings.HUB_MAX_NAME_CHARS:
                raise ValueError("display name too long")
            address = Address(display_name=name or default_name, addr_spec=addr)
        except (ValidationError, ValueError, IndexError) as exc:
            shown = addr or name
            raise Refusal("invalid_address", f"{field}: {shown!r} is not a valid email address") from exc
        if addr.lower() not in seen:
            seen.add(addr.lower())
            result.append(address)
    if not result and value.strip():
        raise Refusal("invalid_address", f"{field}: {value[:100]!r} is not a valid email address")
    return result


def format_address_list(addresses: list[Address]) -> str:
    return ", ".join(str(a) for a in addresses)


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
    for field, body in (("message", req.message), ("text", req.text)):
        if "\x00" in body:
            raise Refusal("invalid_field", f"{field} contains a NUL character")
        if len(body.encode("utf-8", "surrogatepass")) > settings.HUB_MAX_BODY_BYTES:
            raise Refusal("too_large", f"{field} is larger than {settings.HUB_MAX_BODY_BYTES} bytes")
    to = parse_address_list("to", req.to, default_name=to_name)
    cc = parse_address_list("cc", req.cc)
    bcc = parse_address_list("bcc", req.bcc)
    reply_to = parse_address_list("reply_to", req.reply_to)
    if len(to) + len(cc) + len(bcc) > settings.HUB_MAX_RECIPIENTS:
        raise Refusal("too_many_recipients", f"at most {settings.HUB_MAX_RECIPIENTS} recipients in all")
    return {
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


def check_suppressed(app: App, fields: dict) -> None:
    addresses = {addr.lower() for text in (fields["to"], fields["cc"], fields["bcc"])
                 for _name, addr in getaddresses([text]) if addr}
    hit = sorted(Suppression.objects.filter(app=app, email__in=addresses).values_list("email", flat=True))
    if hit:
        raise Refusal("recipient_suppressed", f"suppressed after a hard bounce: {', '.join(hit)}")


IDEMPOTENCY_TTL = timedelta(hours=24)


def _request_hash(req: SendRequest) -> str:
    payload = {k: v for k, v in asdict(req).items() if k != "idempotency_key"}
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
    """Validate and queue one message: the SendLog row and its delivery task are committed
    in the same transaction (ORM broker), so neither exists without the other. The row's
    `replayed` attribute is True when an earlier request with the same Idempotency-Key
    made it (then nothing new was written)."""
    key = req.idempotency_key.strip()
    if len(key) > 255 or any(ch in key for ch in _FORBIDDEN_IN_HEADERS):
        raise Refusal("invalid_field", "Idempotency-Key: at most 255 characters on one line")
    request_hash = _request_hash(req) if key else ""
    if key and (earlier := _replay(app, key, request_hash)):
        return _replayed(earlier)
    primary = usable_servers(app)[0]
    fields = validate(req)
    check_suppressed(app, fields)
    fields["from_name"] = fields["from_name"] or app.from_name or app.name
    try:
        with transaction.atomic():
            log = SendLog.objects.create(
                app=app,
                from_email=primary.sender,
                message_id=make_msgid(domain=settings.HUB_DOMAIN),
                client_ip=client_ip,
                idempotency_key=key,
                **fields,
            )
            if key:
                IdempotencyKey.objects.create(app=app, key=key, request_hash=request_hash, log=log)
            enqueue_delivery([log.id])
    except IntegrityError:
        # The same key arrived twice at once and the other request won: answer as it did.
        earlier = _replay(app, key, request_hash) if key else None
        if earlier is None:
            raise
        return _replayed(earlier)
    log.replayed = False
    return log
