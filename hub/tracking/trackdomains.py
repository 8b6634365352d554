"""Tracking domains (V28 3.6-3.8): a customer's own host names for its links and pixel.

A domain is added (or changed) only when its CNAME already points at
settings.HUB_TRACK_CNAME_TARGET (3.7 answers `domain_cname_error` otherwise and writes
nothing); one domain per account may be the default. Every function takes the acting
account; another account's domains are invisible ("not found")."""

from __future__ import annotations

from datetime import timedelta

import dns.exception
import dns.resolver
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub.domains import dns as hub_dns
from hub.domains.services import DomainError, normalize_domain
from hub.models import Account

from .models import TrackDomain
from .reports import NotFound, TrackingError

MAX_DOMAINS_PER_CALL = 100


def cname_target(domain: str) -> str | None:
    """Where `domain`'s CNAME points ("" when it has none); None when DNS did not answer."""
    try:
        answer = hub_dns.resolver().resolve(domain, "CNAME", raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return ""
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout):
        return None
    for record in answer or []:
        return record.target.to_text(omit_final_dot=True).lower()
    return ""


def target_host() -> str:
    return settings.HUB_TRACK_CNAME_TARGET.strip().rstrip(".").lower()


def cname_ok(domain: str) -> bool | None:
    found = cname_target(domain)
    return None if found is None else found == target_host()


def _normalized(text: str, code: str, template) -> str:
    try:
        return normalize_domain(text)
    except DomainError:
        raise TrackingError(template % {"domain": text[:100]}, code) from None


def parse_names(text: str, code: str = "domains_param_error") -> list[str]:
    """`a.com, b.com` -> normalized names (3.6, 3.8); one bad name refuses them all."""
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    if len(names) > MAX_DOMAINS_PER_CALL:
        raise TrackingError(_("at most %(n)s domains per call") % {"n": MAX_DOMAINS_PER_CALL}, code)
    return [_normalized(name, code, _("domains parameter: %(domain)s is not a valid domain name")) for name in names]


def list_domains(account: Account, names: list[str] | None = None) -> list[TrackDomain]:
    found = TrackDomain.objects.filter(account=account)
    if names:
        found = found.filter(domain__in=names)
    return list(found.order_by("id"))


def get_domain_by_id(account: Account, domain_id: int) -> TrackDomain:
    found = TrackDomain.objects.filter(account=account, pk=domain_id).first()
    if found is None:
        raise NotFound(_("tracking domain not found"))
    return found


def edit_domain(account: Account, text: str, is_default: bool | None = None) -> TrackDomain:
    """Add the domain, or change whether it is the default (3.7). Its CNAME is checked
    first; a wrong or missing one refuses and writes nothing."""
    domain = _normalized(text, "domain_param_error", _("domain parameter: %(domain)s is not a valid domain name"))
    verified = cname_ok(domain)
    if verified is None:
        raise TrackingError(_("DNS did not answer for %(domain)s; try again later") % {"domain": domain},
                            "dns_unavailable", 503)
    if not verified:
        raise TrackingError(_("domain parameter: the CNAME of %(domain)s does not point to %(target)s")
                            % {"domain": domain, "target": target_host()}, "domain_cname_error")
    with transaction.atomic():
        found, _created = TrackDomain.objects.get_or_create(account=account, domain=domain)
        found.is_cname, found.checked_at = True, timezone.now()
        if is_default is not None:
            found.is_default = is_default
        if found.is_default:
            TrackDomain.objects.filter(account=account, is_default=True).exclude(pk=found.pk).update(is_default=False)
        found.save()
    return found


def recheck(domain: TrackDomain) -> TrackDomain:
    """Look at the CNAME again (admin, native API): a domain whose CNAME moved away is no
    longer used in mails."""
    verified = cname_ok(domain.domain)
    if verified is not None:
        domain.is_cname, domain.checked_at = verified, timezone.now()
        domain.save(update_fields=["is_cname", "checked_at"])
    return domain


def recheck_due(batch: int = 200) -> int:
    """Scheduled (migration 0001, every 10 minutes): re-check the CNAME of the domains not
    checked for HUB_TRACK_RECHECK_MINUTES, oldest first, at most `batch`. Returns how many."""
    due = timezone.now() - timedelta(minutes=settings.HUB_TRACK_RECHECK_MINUTES)
    domains = list(TrackDomain.objects.filter(checked_at__lt=due).order_by("checked_at")[:batch])
    for domain in domains:
        recheck(domain)
    return len(domains)


def delete_domains(account: Account, text: str) -> list[str]:
    """Delete the named domains, or every one with `all` (3.8). A name the account does not
    have refuses the call (nothing deleted). Returns the names deleted."""
    value = (text or "").strip()
    if not value:
        raise TrackingError(_("domains is required"), "domains_param_error")
    with transaction.atomic():
        if value.lower() == "all":
            found = list(TrackDomain.objects.filter(account=account).order_by("id"))
        else:
            names = parse_names(value)
            found = list(TrackDomain.objects.filter(account=account, domain__in=names).order_by("id"))
            missing = sorted(set(names) - {d.domain for d in found})
            if missing:
                raise NotFound(_("tracking domain not found: %(names)s") % {"names": ", ".join(missing)[:200]})
        TrackDomain.objects.filter(pk__in=[d.pk for d in found]).delete()
    return [d.domain for d in found]
