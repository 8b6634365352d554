"""Sending domains: add, list, check, delete, the records to publish, periodic re-checks
and DKIM key rotation. Every function takes the acting account (hub.tenancy) and answers
"not found" for another account's domains. Both APIs and the admin call these."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

import idna
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub.models import Account

from . import dns, keys
from .models import DkimKey, Domain

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DomainError(Exception):
    """Refused before anything was written. `code` is the identifier both APIs answer with."""

    code = "error"
    http_status = 400

    def __init__(self, code: str | None = None, message: str = "", http_status: int | None = None) -> None:
        self.code = code or self.code
        self.message = str(message or self.code)
        if http_status is not None:
            self.http_status = http_status
        super().__init__(self.message)


class NotFound(DomainError):
    code = "not_exist"
    http_status = 404


def normalize_domain(text: str) -> str:
    """Lower case IDNA (punycode) form of a domain name; raises DomainError."""
    value = (text or "").strip().rstrip(".")
    if not value:
        raise DomainError("domain_format_error", _("domain is required"))
    if len(value) > 253:
        raise DomainError("domain_format_error", _("domain is too long"))
    try:
        ascii_name = idna.encode(value, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise DomainError("domain_format_error", _("not a valid domain name")) from exc
    labels = ascii_name.split(".")
    if (len(labels) < 2 or len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels)
            or labels[-1].isdigit()):
        raise DomainError("domain_format_error", _("not a valid domain name"))
    return ascii_name


def list_domains(account: Account):
    return Domain.objects.filter(account=account).order_by("id")


def get_domain(account: Account, name: str) -> Domain:
    try:
        normalized = normalize_domain(name)
    except DomainError:
        raise NotFound(message=_("domain not found")) from None
    domain = Domain.objects.filter(account=account, name=normalized).first()
    if domain is None:
        raise NotFound(message=_("domain not found"))
    return domain


def get_domain_by_id(account: Account, domain_id: int) -> Domain:
    domain = Domain.objects.filter(account=account, pk=domain_id).first()
    if domain is None:
        raise NotFound(message=_("domain not found"))
    return domain


def _selectors(base: str) -> tuple[str, str]:
    return base, f"{base}-ed25519"


def make_first_keys(domain: Domain) -> None:
    """A new domain's keys: RSA 2048 under HUB_DKIM_SELECTOR, and Ed25519 under
    `<selector>-ed25519` when HUB_DKIM_ED25519 (one selector publishes one key)."""
    rsa_sel, ed_sel = _selectors(settings.HUB_DKIM_SELECTOR)
    keys.new_key(domain, rsa_sel, DkimKey.Algorithm.RSA, DkimKey.State.ACTIVE)
    if settings.HUB_DKIM_ED25519:
        keys.new_key(domain, ed_sel, DkimKey.Algorithm.ED25519, DkimKey.State.ACTIVE)


def add_domain(account: Account, name: str) -> Domain:
    """Add `name` to the account with its DKIM keys (RSA 2048; Ed25519 too when
    HUB_DKIM_ED25519), then check its DNS once. A DNS failure leaves it not verified."""
    normalized = normalize_domain(name)
    if Domain.objects.filter(name=normalized).exists():
        # The same answer whichever account holds it; which one is not told.
        raise DomainError("domain_exists", _("this domain is already registered"), 409)
    try:
        with transaction.atomic():
            domain = Domain.objects.create(account=account, name=normalized)
            make_first_keys(domain)
    except IntegrityError as exc:  # added by a concurrent call meanwhile
        raise DomainError("domain_exists", _("this domain is already registered"), 409) from exc
    return run_check(domain)


def delete_domain(account: Account, name: str, *, as_manager: bool = False) -> None:
    """Delete a domain, its keys and its mailboxes. A customer cannot delete a verified
    domain (V28 7.6); its manager can (7.5)."""
    domain = get_domain(account, name)
    if domain.is_verified and not as_manager:
        raise DomainError("domain_verified_cannot_delete", _("a verified domain cannot be deleted"))
    domain.delete()


def active_keys(domain: Domain, states=(DkimKey.State.ACTIVE,)) -> list[DkimKey]:
    return list(domain.keys.filter(state__in=states).order_by("algorithm", "id"))


def dkim_value(domain: Domain) -> str:
    """The TXT value of the domain's active RSA key (7.3's `dkim`)."""
    key = next((k for k in active_keys(domain) if k.algorithm == DkimKey.Algorithm.RSA), None)
    return key.record if key else ""


@dataclass
class Record:
    type: str
    name: str
    value: str
    ok: bool | None = None
    note: str = ""


def records(domain: Domain) -> list[Record]:
    """What the customer publishes: SPF, MX, and a TXT record per active and next key
    (both during a rotation). Retired keys are listed last: remove their records some days
    after the rotation (mail signed with them may still be in flight)."""
    out = [
        Record("TXT", domain.name, f"v=spf1 include:{settings.HUB_SPF_INCLUDE} -all", domain.spf_ok,
               str(_("or add include:%(host)s to your SPF record") % {"host": settings.HUB_SPF_INCLUDE})),
        Record("MX", domain.name, f"10 {settings.HUB_MX_HOST}.", domain.mx_ok),
    ]
    for key in domain.keys.exclude(state=DkimKey.State.RETIRED).order_by("state", "algorithm"):
        note = str(_("next key: publish now, activate later")) if key.state == DkimKey.State.NEXT else ""
        out.append(Record("TXT", key.dns_name, key.record, domain.dkim_ok if key.state == DkimKey.State.ACTIVE
                          else None, note))
    for key in domain.keys.filter(state=DkimKey.State.RETIRED).order_by("-retired_at")[:4]:
        out.append(Record("TXT", key.dns_name, key.record, None, str(_("retired: remove this record"))))
    return out


def _kind(key: DkimKey) -> str:
    return "ed25519" if key.algorithm == DkimKey.Algorithm.ED25519 else "rsa"


def run_check(domain: Domain) -> Domain:
    """Look the domain up and record the result. A domain passing for the first time is
    verified; a verified one failing is flagged broken (broken_since), and verified again
    when fixed. A resolver failure records the note and changes no flag."""
    now = timezone.now()
    wanted = [(k.selector, k.public_key, _kind(k)) for k in active_keys(domain)]
    try:
        result = dns.check(domain.name, wanted)
    except dns.DnsUnavailable as exc:
        log.warning("DNS check of %s failed: %s", domain.name, exc)
        domain.check_detail = f"DNS unavailable: {exc}"[:2000]
        domain.checked_at = now
        domain.save(update_fields=["check_detail", "checked_at"])
        return domain
    domain.spf_ok, domain.mx_ok, domain.dkim_ok = result.spf_ok, result.mx_ok, result.dkim_ok
    domain.check_detail = "\n".join(result.notes)[:2000]
    domain.checked_at = now
    if result.passed:
        if domain.status == Domain.Status.BROKEN:
            log.info("domain %s: records fixed", domain.name)
        domain.status, domain.broken_since = Domain.Status.VERIFIED, None
        domain.verified_at = domain.verified_at or now
    elif domain.is_verified:
        if domain.status != Domain.Status.BROKEN:
            log.warning("domain %s (account %s): records broken: %s", domain.name, domain.account_id,
                        "; ".join(result.notes))
            domain.broken_since = now
        domain.status = Domain.Status.BROKEN
    domain.save(update_fields=["spf_ok", "mx_ok", "dkim_ok", "check_detail", "checked_at", "status",
                               "verified_at", "broken_since"])
    return domain


# --- V28 7.3: several domains at once ------------------------------------------------------

INFO = {
    3: _("added and verified"),
    2: _("added but not verified"),
    1: _("not in the system but verified"),
    0: _("not in the system and not verified"),
}


@dataclass
class CheckRow:
    customer_id: int
    domain_id: int
    val: str
    status: int
    info: str
    dkim: str


def parse_domain_list(text: str) -> list[str]:
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not names:
        raise DomainError("domains_param_error", _("domains is required (comma-separated)"))
    if len(names) > settings.HUB_DOMAIN_CHECK_MAX:
        raise DomainError("domains_param_error", _("at most %(n)s domains per call") % {
            "n": settings.HUB_DOMAIN_CHECK_MAX})
    return names


def check_domains(account: Account, names: list[str]) -> list[CheckRow]:
    """7.3: each name checked now. A domain of the account (domain_id > 0) has its result
    recorded; any other name (also another account's) is looked up and nothing is written.
    A name that is not a domain answers status 0 with the reason in `info`."""
    rows = []
    # After one resolver failure the rest are not looked up: each would wait HUB_DNS_TIMEOUT
    # again, and 20 of them would outlast the web server's request timeout.
    resolver_down = False
    for raw in names:
        try:
            name = normalize_domain(raw)
        except DomainError as exc:
            rows.append(CheckRow(account.pk, 0, raw[:253], 0, exc.message, ""))
            continue
        domain = Domain.objects.filter(account=account, name=name).first()
        if domain is not None:
            if not resolver_down:
                domain = run_check(domain)
            resolver_down = resolver_down or domain.check_detail.startswith("DNS unavailable")
            passed = domain.spf_ok and domain.mx_ok and not resolver_down
            status = 3 if passed else 2
            rows.append(CheckRow(account.pk, domain.pk, name, status, str(INFO[status]), dkim_value(domain)))
            continue
        passed = False
        if not resolver_down:
            try:
                passed = dns.check(name).passed
            except dns.DnsUnavailable:
                resolver_down = True
        status = 1 if passed else 0
        rows.append(CheckRow(account.pk, 0, name, status, str(INFO[status]), ""))
    return rows


# --- periodic re-check ---------------------------------------------------------------------

def recheck_due(limit: int | None = None) -> dict[str, int]:
    """Check the domains not checked for HUB_DOMAIN_RECHECK_MINUTES, oldest first, at most
    `limit` (HUB_DOMAIN_RECHECK_BATCH) per run. Returns counts by resulting status."""
    cutoff = timezone.now() - timedelta(minutes=settings.HUB_DOMAIN_RECHECK_MINUTES)
    limit = limit or settings.HUB_DOMAIN_RECHECK_BATCH
    due = Domain.objects.filter(checked_at__isnull=True) | Domain.objects.filter(checked_at__lt=cutoff)
    counts: dict[str, int] = {}
    for domain in due.order_by("checked_at", "id")[:limit]:
        try:
            status = run_check(domain).status
        except Exception:  # one domain's bug must not stop the others; logged with its trace
            log.exception("re-check of domain %s failed", domain.name)
            status = "error"
        counts[status] = counts.get(status, 0) + 1
    return counts


# --- DKIM key rotation ---------------------------------------------------------------------

def _free_selector(domain: Domain) -> str:
    base = f"{settings.HUB_DKIM_SELECTOR}{timezone.localdate():%Y%m%d}"
    taken = set(domain.keys.values_list("selector", flat=True))
    selector, n = base, 1
    while any(s in taken for s in _selectors(selector)):
        n += 1
        selector = f"{base}n{n}"
    return selector


def start_rotation(domain: Domain) -> list[DkimKey]:
    """Make the next key(s) under a new selector. Both the active and the next records are
    published during the switch; activate_next() switches signing once DNS has the new one."""
    if domain.keys.filter(state=DkimKey.State.NEXT).exists():
        raise DomainError("rotation_in_progress", _("a rotation is already in progress: activate the next key first"))
    rsa_sel, ed_sel = _selectors(_free_selector(domain))
    made = [keys.new_key(domain, rsa_sel, DkimKey.Algorithm.RSA, DkimKey.State.NEXT)]
    if settings.HUB_DKIM_ED25519 or domain.keys.filter(algorithm=DkimKey.Algorithm.ED25519).exists():
        made.append(keys.new_key(domain, ed_sel, DkimKey.Algorithm.ED25519, DkimKey.State.NEXT))
    log.info("domain %s: DKIM rotation started, next selector %s", domain.name, rsa_sel)
    return made


def activate_next(domain: Domain, *, force: bool = False) -> list[DkimKey]:
    """Sign with the next key(s) from now on; the old ones are retired. Refused while the
    next records are not visible in DNS, unless `force`."""
    nxt = list(domain.keys.filter(state=DkimKey.State.NEXT))
    if not nxt:
        raise DomainError("no_rotation", _("no next key: start a rotation first"))
    if not force:
        try:
            missing = [k.dns_name for k in nxt if not dns.dkim_ok(dns.txt(k.dns_name), k.public_key, _kind(k))]
        except dns.DnsUnavailable as exc:
            raise DomainError("dns_unavailable", _("DNS lookup failed: %(error)s") % {"error": exc}) from exc
        if missing:
            raise DomainError("next_key_not_published", _("publish these records first: %(names)s") % {
                "names": ", ".join(missing)})
    now = timezone.now()
    with transaction.atomic():
        domain.keys.filter(state=DkimKey.State.ACTIVE).update(state=DkimKey.State.RETIRED, retired_at=now)
        domain.keys.filter(pk__in=[k.pk for k in nxt]).update(state=DkimKey.State.ACTIVE, activated_at=now)
    log.info("domain %s: DKIM keys %s now sign", domain.name, ", ".join(k.selector for k in nxt))
    return nxt
