"""What a campaign may name, checked before anything is written: the error type, the
templates, lists and senders of the account, and every settable field (Fields). Used by
hub.campaigns.services (create, edit) and the admin's form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, validate_domain_name
from django.utils.translation import gettext as _

from hub.contacts.models import MailList
from hub.domains.models import Domain, Mailbox
from hub.mailtemplates.models import Template
from hub.mailtemplates.services import usable_filter
from hub.models import Account, AppServer

from .models import MAX_HOUR_SPEED, MIN_HOUR_SPEED, Campaign, CampaignSettings

MAX_TEMPLATES = 20
MAX_LISTS = 50


class CampaignError(Exception):
    """Refused, nothing written. `code` is the identifier both APIs show."""

    def __init__(self, code: str, message: str = "", http_status: int = 400):
        self.code, self.message, self.http_status = code, message or code, http_status
        super().__init__(self.message)


def not_found() -> CampaignError:
    return CampaignError("not_exist", _("no such task"), 404)


def settings_of(account: Account) -> CampaignSettings:
    found = CampaignSettings.objects.filter(account=account).first()
    return found or CampaignSettings(account=account)


# --- checking what a campaign names ------------------------------------------------------------

def clean_templates(account: Account, ids: list[int]) -> list[int]:
    """Own or shared-by-the-manager templates (hub.mailtemplates sharing rule), in the given
    order without repeats; a template the check refused (red, not passed) cannot be chosen.
    One still being checked can: the dispatcher waits for its check before it sends."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise CampaignError("invalid_template", _("tpl_id is required"))
    if len(ids) > MAX_TEMPLATES:
        raise CampaignError("invalid_template", _("at most %(n)s templates") % {"n": MAX_TEMPLATES})
    found = {t.pk: t for t in Template.objects.filter(usable_filter(account), pk__in=ids)}
    for pk in ids:
        if pk not in found:
            raise CampaignError("invalid_template", _("template %(id)s does not exist") % {"id": pk})
        if found[pk].check_status == Template.CheckStatus.REFUSED:
            raise CampaignError("template_refused", _("template %(id)s failed its check (red)") % {"id": pk})
    return ids


def clean_lists(account: Account, ids: list[int]) -> list[int]:
    ids = sorted(set(ids))
    if not ids:
        raise CampaignError("invalid_list", _("maillist_id is required"))
    if len(ids) > MAX_LISTS:
        raise CampaignError("invalid_list", _("at most %(n)s lists") % {"n": MAX_LISTS})
    found = set(MailList.objects.filter(account=account, pk__in=ids).values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise CampaignError("invalid_list", _("list %(id)s does not exist") % {"id": missing[0]})
    return ids


@dataclass(frozen=True)
class Sender:
    """Where a campaign's rows go out: through `app_id`, with From `from_email` ("" = the
    delivering SMTP server's own sender, as for API mail)."""

    app_id: int
    address: str  # what send_account / send_domain are matched against
    from_email: str = ""


def _apps_with_servers(account: Account) -> set[int]:
    return set(AppServer.objects.filter(app__account=account, app__enabled=True, server__enabled=True)
               .values_list("app_id", flat=True))


def senders(account: Account) -> list[Sender]:
    """Every sender a campaign of the account may use: its enabled apps' enabled SMTP
    servers' senders (From = that server's sender), then the enabled mailboxes of its verified
    domains (hub.domains; From = the mailbox, sent through the mailbox's app when that app is
    enabled and has an enabled server)."""
    links = (AppServer.objects.filter(app__account=account, app__enabled=True, server__enabled=True)
             .select_related("server").order_by("app_id", "priority", "id"))
    found = [Sender(link.app_id, link.server.sender.lower()) for link in links if link.server.sender]
    usable = _apps_with_servers(account)
    boxes = (Mailbox.objects.filter(domain__account=account, enabled=True,
                                    domain__status__in=(Domain.Status.VERIFIED, Domain.Status.BROKEN))
             .order_by("id").values_list("app_id", "address"))
    found += [Sender(app_id, address, address) for app_id, address in boxes if app_id in usable]
    return found


def _verified_domain_sender(account: Account, address: str) -> list[Sender]:
    """An address on one of the account's verified domains that is no mailbox: sent through
    the account's oldest enabled app with an enabled server (the app a new mailbox gets)."""
    domain = address.rpartition("@")[2]
    if Mailbox.objects.filter(address=address).exists():
        return []  # a mailbox that is disabled (or whose app cannot send): not a sender now
    if not Domain.objects.filter(account=account, name=domain,
                                 status__in=(Domain.Status.VERIFIED, Domain.Status.BROKEN)).exists():
        return []
    usable = sorted(_apps_with_servers(account))
    return [Sender(usable[0], address, address)] if usable else []


def resolve_sender(account: Account, send_domain: str, send_account: str) -> list[Sender]:
    """The senders that match V28's rules: one address (send_account=addr: an SMTP server's
    sender, a mailbox, or an address on a verified domain), every sender of a domain
    (send_domain=D, send_account=all) or every sender (all, all)."""
    send_domain, send_account = (send_domain or "all").strip().lower(), (send_account or "all").strip().lower()
    pairs = senders(account)
    if send_account != "all":
        try:
            EmailValidator()(send_account)
        except ValidationError:
            raise CampaignError("invalid_sender", _("send_account is not an address")) from None
        found = [s for s in pairs if s.address == send_account] or _verified_domain_sender(account, send_account)
        what = send_account
    elif send_domain != "all":
        found = [s for s in pairs if s.address.rpartition("@")[2] == send_domain]
        what = send_domain
    else:
        found, what = pairs, _("any sender")
    if not found:
        raise CampaignError("invalid_sender", _("no SMTP server, mailbox or verified domain of this account sends "
                                                "as %(what)s") % {"what": what})
    return list(dict.fromkeys(found))


@dataclass
class Fields:
    """A campaign's settable fields as typed values (None = not given)."""

    name: str | None = None
    template_ids: list[int] | None = None
    list_ids: list[int] | None = None
    send_domain: str | None = None
    send_account: str | None = None
    send_fullname: str | None = None
    send_replyto: str | None = None
    send_qty_start: int | None = None
    send_qty: int | None = None
    send_time: datetime | None = None
    subs_link: bool | None = None
    track_status: int | None = None
    track_domain: str | None = None
    hour_speed: int | None = None
    is_need_receipt: bool | None = None
    is_delay: bool | None = None


# Fields that decide who gets what: fixed once the campaign has started.
CONTENT = ("template_ids", "list_ids", "send_domain", "send_account", "send_qty_start", "send_qty", "send_time")


def check_fields(account: Account, f: Fields, current: Campaign | None) -> dict:
    """The changes `f` makes, checked; raises CampaignError before anything is written."""
    changes: dict = {}
    if f.name is not None:
        changes["name"] = f.name.strip()[:200]
    if f.template_ids is not None:
        changes["template_ids"] = clean_templates(account, f.template_ids)
    if f.list_ids is not None:
        changes["list_ids"] = clean_lists(account, f.list_ids)
    if f.send_domain is not None or f.send_account is not None or current is None:
        domain = f.send_domain if f.send_domain is not None else (current.send_domain if current else "all")
        addr = f.send_account if f.send_account is not None else (current.send_account if current else "all")
        domain, addr = (domain or "all").strip().lower(), (addr or "all").strip().lower()
        if domain != "all":
            try:
                validate_domain_name(domain)
            except ValidationError:
                raise CampaignError("invalid_sender", _("send_domain is not a domain name")) from None
        found = resolve_sender(account, domain, addr)
        changes.update(send_domain=domain, send_account=addr, app_ids=list(dict.fromkeys(s.app_id for s in found)),
                       senders=[[s.app_id, s.from_email] for s in found])
    if f.send_fullname is not None:
        name = " ".join(f.send_fullname.split())
        if len(name) > 200:
            raise CampaignError("invalid_sender", _("send_fullname is over 200 characters"))
        changes["send_fullname"] = name
    if f.send_replyto is not None:
        reply = f.send_replyto.strip()
        if reply:
            try:
                EmailValidator()(reply)
            except ValidationError:
                raise CampaignError("invalid_replyto", _("send_replyto is not an address")) from None
        changes["send_replyto"] = reply
    start = f.send_qty_start if f.send_qty_start is not None else (current.send_qty_start if current else 1)
    end = f.send_qty if f.send_qty is not None else (current.send_qty if current else 0)
    if start < 1:
        raise CampaignError("invalid_range", _("send_qty_start must be 1 or more"))
    if end and end < start:
        raise CampaignError("invalid_range", _("send_qty must be 0 (to the end) or at least send_qty_start"))
    if f.send_qty_start is not None:
        changes["send_qty_start"] = start
    if f.send_qty is not None:
        changes["send_qty"] = end
    if f.send_time is not None:
        changes["send_time"] = f.send_time
    if f.subs_link is not None:
        changes["subs_link"] = f.subs_link
    if f.track_status is not None:
        if f.track_status not in (0, 1, 2):
            raise CampaignError("invalid_track", _("track_status must be 0, 1 or 2"))
        changes["track_status"] = f.track_status
    if f.track_domain is not None:
        domain = f.track_domain.strip().lower()
        if domain:
            try:
                validate_domain_name(domain)
            except ValidationError:
                raise CampaignError("invalid_track", _("track_domain is not a domain name")) from None
        changes["track_domain"] = domain
    if f.hour_speed is not None:
        if f.hour_speed and not MIN_HOUR_SPEED <= f.hour_speed <= MAX_HOUR_SPEED:
            raise CampaignError("invalid_speed", _("hour_speed must be %(min)s..%(max)s (or 0: no limit)") % {"min": MIN_HOUR_SPEED, "max": MAX_HOUR_SPEED})
        changes["hour_speed"] = f.hour_speed
    if f.is_need_receipt is not None:
        if f.is_need_receipt and not settings_of(account).read_receipts:
            raise CampaignError("receipt_unavailable", _("this account has no read-receipt service"))
        changes["is_need_receipt"] = f.is_need_receipt
    if f.is_delay is not None:
        changes["is_delay"] = f.is_delay
    return changes
