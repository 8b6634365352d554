"""Who may call: credentials (constant-time), the site's IP blocklist, each app's allowed IPs
and API rate limit, the caller's IP behind trusted proxies, and the one entry point each
front door calls before it acts (admit for the HTTP API, admit_login for SMTP AUTH)."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import crypto, queries
from .models import ApiRateCounter, App, LoginFailureCounter, Site, parse_networks
from .refusals import Refusal

# --- credentials -------------------------------------------------------------------------

# The stand-in checked when the AppID does not exist (no real digest is all zeros).
_DUMMY_DIGEST = "0" * 64
# Looked up for an AppID that is not a number: no row has primary key 0, and the lookup
# is the same query a real AppID makes.
_NO_APP = 0


def _appid_number(appid: str) -> int:
    return int(appid) if appid.isascii() and appid.isdigit() and len(appid) < 19 else _NO_APP


def authenticate(appid: str, appsecret: str) -> App:
    """The enabled app these credentials name; raises Refusal. A wrong AppID and a wrong
    secret do the same work (one lookup by primary key, App.check_secret on an App with
    two digest comparisons), so timing cannot tell them apart."""
    appid, appsecret = appid.strip(), appsecret.strip()
    if not appid:
        raise Refusal("appid_required")
    if not appsecret:
        raise Refusal("appsecret_required")
    app = queries.app(_appid_number(appid))
    # An unsaved App with the dummy digests when there is none: the same method, the same
    # comparisons, the same clock read as for a real app.
    candidate = app if app is not None else App(secret_digest=_DUMMY_DIGEST)
    ok = candidate.check_secret(appsecret)  # the current secret, or the old one in its grace period
    if app is None or not ok:
        raise Refusal("invalid_credentials")
    if not app.enabled:
        raise Refusal("app_disabled")
    return app


def credential_digest(appsecret: str) -> str:
    """What a login proved: the digest of the secret it used (kept by an SMTP session)."""
    return crypto.secret_digest(appsecret.strip())


def credential_still_valid(app: App, digest: str) -> bool:
    """Does the secret behind `digest` still open `app` (fresh from the database)? False
    once the secret was rotated without grace, or its grace period is over."""
    current = hmac.compare_digest(digest, app.secret_digest or "")
    previous = hmac.compare_digest(digest, app.previous_secret_digest or _DUMMY_DIGEST)
    in_grace = bool(app.previous_secret_expires_at and timezone.now() < app.previous_secret_expires_at)
    return current or (previous and in_grace)


# --- failed-login limits -------------------------------------------------------------------
# Only failures are counted, per fixed window, in the database (every gunicorn worker and
# the smtpd share them). See docs/security.md for why the per-AppID limit never refuses the
# correct secret.

# Failures that count: credentials that do not open an app (wrong AppID or secret, empty).
COUNTED_FAILURES = ("invalid_credentials", "appid_required", "appsecret_required")


def _clock() -> datetime:
    """The failure counters' clock (tests hold it still inside one window)."""
    return timezone.now()


def _window() -> tuple[datetime, int]:
    """The current window's start and the seconds left in it."""
    length = max(1, settings.HUB_LOGIN_FAILURE_WINDOW)
    now = _clock()
    start = int(now.timestamp()) // length * length
    return datetime.fromtimestamp(start, tz=now.tzinfo), max(1, start + length - int(now.timestamp()))


def _ip_key(ip: str | None) -> str:
    if not ip:
        return ""
    address = ipaddress.ip_address(ip)
    if address.version == 6:  # one host usually holds a whole /64
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _failures(scope: str, key: str, window_start: datetime) -> int:
    row = LoginFailureCounter.objects.filter(scope=scope, key=key, window_start=window_start).values("count").first()
    return row["count"] if row else 0


def _count_failure(scope: str, key: str, window_start: datetime) -> int:
    with transaction.atomic():
        counter, created = LoginFailureCounter.objects.get_or_create(scope=scope, key=key, window_start=window_start)
        LoginFailureCounter.objects.filter(pk=counter.pk).update(count=F("count") + 1)
        if created:  # a new window: the counters of windows past are of no use any more
            LoginFailureCounter.objects.filter(window_start__lt=window_start).delete()
    return counter.count + 1


def check_login_allowed(ip: str | None) -> None:
    """Refuse, before any credential is checked, an IP over its failure limit."""
    limit = settings.HUB_LOGIN_FAILURES_PER_IP
    key = _ip_key(ip)
    if not limit or not key:
        return
    window_start, retry_after = _window()
    if _failures(LoginFailureCounter.Scope.IP, key, window_start) >= limit:
        raise Refusal("login_rate_limited", f"too many failed logins from {key}", retry_after=retry_after)


def record_login_failure(ip: str | None, appid: str) -> None:
    """Count one failed login against the IP and the AppID; raises login_rate_limited when
    either is now over its limit (the caller then answers 429 / 421 instead of 401 / 535)."""
    window_start, retry_after = _window()
    over = []
    ip_key = _ip_key(ip)
    ip_limit, app_limit = settings.HUB_LOGIN_FAILURES_PER_IP, settings.HUB_LOGIN_FAILURES_PER_APP
    # `limit` failures are answered as usual (401 / 535); the next is login_rate_limited. For
    # an IP it is refused by check_login_allowed before this, so this fires only under races.
    if ip_limit and ip_key and _count_failure(LoginFailureCounter.Scope.IP, ip_key, window_start) > ip_limit:
        over.append(ip_key)
    number = _appid_number(appid.strip())
    if app_limit and number != _NO_APP and _count_failure(LoginFailureCounter.Scope.APP, str(number),
                                                          window_start) > app_limit:
        over.append(f"AppID {number}")
    if over:
        raise Refusal("login_rate_limited", f"too many failed logins ({', '.join(over)})", retry_after=retry_after)


def login(appid: str, appsecret: str, ip: str | None) -> App:
    """authenticate() under the failed-login limits: an IP over its limit is refused first;
    a failure is counted and, when it puts the IP or AppID over the limit, answered
    login_rate_limited. A success is never refused by the AppID's count."""
    check_login_allowed(ip)
    try:
        return authenticate(appid, appsecret)
    except Refusal as refusal:
        if refusal.error in COUNTED_FAILURES:
            record_login_failure(ip, appid)
        raise


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


# --- one entry point for the HTTP API ------------------------------------------------------------

ACTIONS = ("send", "status")


@dataclass
class Admission:
    app: App
    ip: str | None
    action: str


def admit(meta: Mapping[str, str], read_field: Callable[[str], str] | None, default_action: str = "") -> Admission:
    """Everything the HTTP API checks before it acts on a request, in this order: the
    caller's IP against the site's blocklist (first, so a blocked caller learns nothing), the
    body's shape (`read_field` is None when it is not a form or JSON object), the action, the
    credentials, the app's allowed IPs, and for a send the app's rate limit. `read_field(name)`
    reads one request field as text; it is called lazily, so a malformed field is reported
    only once the checks before it have passed. Raises Refusal."""
    site = Site.cached()
    ip = client_ip(meta, site)
    check_blocklist(ip, site)
    if read_field is None:
        raise Refusal("bad_request", "the body must be a form or a JSON object")
    action = read_field("action").strip() or default_action
    if action not in ACTIONS:
        raise Refusal("unknown_action", f"unknown action {action[:50]!r}" if action else "action is required")
    app = login(read_field("appid"), read_field("appsecret"), ip)
    check_allowlist(app, ip)
    if action == "send":
        check_rate_limit(app)
    return Admission(app, ip, action)


def admit_login(appid: str, appsecret: str, ip: str | None) -> App:
    """The same checks for an SMTP submission's AUTH: the blocklist, the credentials, the
    app's allowed IPs. (The rate limit is counted per message, at MAIL.) Raises Refusal."""
    check_blocklist(ip, Site.cached())
    app = login(appid, appsecret, ip)
    check_allowlist(app, ip)
    return app


# --- other SMTP credentials (registered by EDM apps) -----------------------------------------
# The core does not know mailboxes (hub.domains): an EDM app registers a checker that
# recognizes its own logins. A checker returns None for a login that is not its kind, an
# ExtraLogin when the password is right, and raises Refusal("invalid_credentials") when not.


@dataclass
class ExtraLogin:
    app: App  # the app the message is sent as
    must_send_from: str  # the only From address this login may use ("" = any)
    still_valid: Callable[[], bool]  # asked again at every MAIL (disabled, password changed)


CredentialChecker = Callable[[str, str], "ExtraLogin | None"]
_credential_checkers: list[CredentialChecker] = []


def register_credential_checker(checker: CredentialChecker) -> None:
    if checker not in _credential_checkers:
        _credential_checkers.append(checker)


def admit_smtp_login(login: str, password: str, ip: str | None) -> tuple[App, ExtraLogin | None]:
    """admit_login() for an AppID, or a registered checker's login (e.g. a mailbox address),
    under the same blocklist, failed-login limits and the app's allowed IPs."""
    if "@" not in login or not _credential_checkers:
        return admit_login(login, password, ip), None
    check_blocklist(ip, Site.cached())
    check_login_allowed(ip)
    try:
        extra = next((e for e in (c(login.strip(), password) for c in _credential_checkers) if e), None)
        if extra is None:
            raise Refusal("invalid_credentials")
        if not extra.app.enabled:
            raise Refusal("app_disabled")
    except Refusal as refusal:
        if refusal.error in COUNTED_FAILURES:
            record_login_failure(ip, "")
        raise
    check_allowlist(extra.app, ip)
    return extra.app, extra
