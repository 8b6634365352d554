"""Mailboxes (V28 7.7-7.10): sender accounts under a verified domain, and their use as SMTP
submission credentials (check_login, registered with hub.access in apps.py)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from hub.access import ExtraLogin
from hub.models import Account, App
from hub.refusals import Refusal

from .models import Domain, Mailbox
from .services import DomainError, NotFound, normalize_domain

# Compared against when the mailbox does not exist, so a wrong address costs the same hash
# work as a wrong password (timing tells nothing). Made once, lazily (hashing is slow).
_dummy_hash: list[str] = []

_LOCAL_OK = set("abcdefghijklmnopqrstuvwxyz0123456789.!#$%&'*+/=?^_`{|}~-")


def normalize_mailbox(text: str) -> tuple[str, str]:
    """(local part, domain) of a mailbox address, lower case; raises DomainError."""
    value = (text or "").strip()
    local, sep, domain = value.rpartition("@")
    local = local.lower()
    if (not sep or not local or len(local) > 64 or not set(local) <= _LOCAL_OK or local.startswith(".")
            or local.endswith(".") or ".." in local):
        raise DomainError("mailbox_format_error", _("not a valid mailbox address"))
    try:
        domain = normalize_domain(domain)
    except DomainError as exc:
        raise DomainError("mailbox_format_error", _("not a valid mailbox address")) from exc
    if len(local) + 1 + len(domain) > 254:
        raise DomainError("mailbox_format_error", _("not a valid mailbox address"))
    return local, domain


def check_new_password(password: str) -> str:
    if not (settings.HUB_MAILBOX_PASSWORD_MIN <= len(password or "") <= 128):
        raise DomainError("password_error", _("the password must have %(min)s to 128 characters") % {
            "min": settings.HUB_MAILBOX_PASSWORD_MIN})
    return password


def _domain_of(account: Account, domain_name: str) -> Domain:
    domain = Domain.objects.filter(account=account, name=domain_name).first()
    if domain is None:
        raise NotFound(message=_("domain not found"))
    return domain


def list_mailboxes(account: Account, domain_name: str, page: int | None = None,
                   limit: int = 30) -> tuple[int, list[Mailbox]]:
    """(total, mailboxes) of one of the account's domains, by id; a page of `limit` or all."""
    try:
        domain = _domain_of(account, normalize_domain(domain_name))
    except DomainError:
        raise NotFound(message=_("domain not found")) from None
    rows = Mailbox.objects.filter(domain=domain).select_related("domain").order_by("id")
    total = rows.count()
    if page is not None:
        rows = rows[(page - 1) * limit: page * limit]
    return total, list(rows)


def get_mailbox(account: Account, address: str) -> Mailbox:
    try:
        local, domain = normalize_mailbox(address)
    except DomainError:
        raise NotFound(message=_("mailbox not found")) from None
    box = Mailbox.objects.filter(address=f"{local}@{domain}", domain__account=account).select_related("domain").first()
    if box is None:
        raise NotFound(message=_("mailbox not found"))
    return box


def default_app(account: Account) -> App:
    """The app a new mailbox sends through unless one is named: the account's oldest
    enabled app (its first, usually the only one)."""
    app = App.objects.filter(account=account, enabled=True).order_by("id").first()
    if app is None:
        raise DomainError("no_app", _("the account has no enabled app to send through"))
    return app


def add_mailbox(account: Account, address: str, password: str, app: App | None = None,
                enabled: bool = True) -> Mailbox:
    local, domain_name = normalize_mailbox(address)
    domain = _domain_of(account, domain_name)
    if not domain.is_verified:
        raise DomainError("domain_not_verified", _("the domain is not verified yet"))
    check_new_password(password)
    if app is not None and app.account_id != account.pk:
        raise NotFound(message=_("app not found"))
    app = app or default_app(account)
    box = Mailbox(domain=domain, local_part=local, address=f"{local}@{domain_name}", enabled=enabled, app=app)
    box.set_password(password)
    try:
        with transaction.atomic():
            box.save()
    except IntegrityError as exc:
        raise DomainError("mailbox_exists", _("this mailbox already exists"), 409) from exc
    return box


def edit_mailbox(account: Account, address: str, *, password: str | None = None,
                 enabled: bool | None = None, app: App | None = None) -> Mailbox:
    box = get_mailbox(account, address)
    if password is None and enabled is None and app is None:
        raise DomainError("param_error", _("nothing to change: send pwd or status"))
    if password is not None:
        box.set_password(check_new_password(password))
    if enabled is not None:
        box.enabled = enabled
    if app is not None:
        if app.account_id != account.pk:
            raise NotFound(message=_("app not found"))
        box.app = app
    box.save()
    return box


def delete_mailbox(account: Account, address: str) -> None:
    get_mailbox(account, address).delete()


# --- SMTP AUTH as a mailbox ----------------------------------------------------------------

def _still_valid(box_id: int, changed_at) -> bool:
    box = Mailbox.objects.filter(pk=box_id).select_related("domain", "domain__account").first()
    return bool(box and box.enabled and box.password_changed_at == changed_at and box.domain.is_verified)


def check_login(login: str, password: str) -> ExtraLogin | None:
    """hub.access credential checker: a mailbox address and its password."""
    if "@" not in login:
        return None
    box = (Mailbox.objects.filter(address=login.lower()).select_related("app", "domain").first()
           if len(login) <= 254 else None)
    if box is None:
        if not _dummy_hash:
            _dummy_hash.append(make_password("not a real password"))
        check_password(password, _dummy_hash[0])
        raise Refusal("invalid_credentials")
    if not box.check_password(password) or not box.enabled or not box.domain.is_verified:
        raise Refusal("invalid_credentials")
    changed_at = box.password_changed_at
    return ExtraLogin(app=box.app, must_send_from=box.address,
                      still_valid=lambda: _still_valid(box.pk, changed_at))


def get_mailbox_by_id(account: Account, mailbox_id: int) -> Mailbox:
    box = Mailbox.objects.filter(pk=mailbox_id, domain__account=account).select_related("domain").first()
    if box is None:
        raise NotFound(message=_("mailbox not found"))
    return box
