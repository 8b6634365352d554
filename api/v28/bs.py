"""V28 chapter 7, `bs.php`: sending domains (7.1-7.6) and their mailboxes (7.7-7.10).
Every action calls hub.domains with the acting account (hub.tenancy: `customer_id` and
`user_type=manager` for a manager's sub-account); another account's domain or mailbox is
`not_exist`. 7.4/7.5 are for manager accounts only and need a sub-account's `customer_id`."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.translation import gettext as _

from hub.domains import mailboxes, services
from hub.domains.services import DomainError

from .core import Call, V28Error, action, param_error, result, xml_response
from .xml import el

MAILBOX_PAGE_DEFAULT = 30  # the reference's default
MAILBOX_PAGE_MAX = 500  # ours: the reference states none


def _v28(exc: DomainError) -> V28Error:
    # Our identifiers ((e) #45); 404 for not found, 400 for every other refusal (V28 answers
    # duplicates with 400 too, as `exist` in chapter 4).
    return V28Error(exc.code, exc.message, 404 if exc.http_status == 404 else 400)


def _manager_call(call: Call) -> None:
    """7.4/7.5: a manager account, acting for one of its sub-accounts."""
    if not call.app.account.is_manager:
        raise V28Error("forbidden", _("only a manager account may call this"), 403)
    if call.account.pk == call.app.account_id:
        raise param_error(_("customer_id of one of your sub-accounts is required"))


def _added(domain) -> HttpResponse:
    # 7.2: `data` is the domain's id, plain text as the sample shows.
    return result("success_and_check_ok" if domain.status == domain.Status.VERIFIED else "success", domain.pk,
                  as_cdata=False)


@action("bs", "domain-list")
def domain_list(call: Call) -> HttpResponse:
    items = [el("data", el("customer_id", d.account_id), el("domain", d.name))
             for d in services.list_domains(call.account)]
    return xml_response(el("domain_list", *items))


@action("bs", "customer-domain-add")
def customer_domain_add(call: Call) -> HttpResponse:
    try:
        return _added(services.add_domain(call.account, call.params.required("domain")))
    except DomainError as exc:
        raise _v28(exc) from exc


@action("bs", "domain-check", methods=("POST",))
def domain_check(call: Call) -> HttpResponse:
    try:
        names = services.parse_domain_list(call.params.get("domains", max_chars=10_000))
        rows = services.check_domains(call.account, names)
    except DomainError as exc:
        raise _v28(exc) from exc
    return xml_response(el("domain_list", *(
        el("domain", el("customer_id", r.customer_id), el("domain_id", r.domain_id), el("val", r.val),
           el("status", r.status), el("info", r.info), el("dkim", r.dkim)) for r in rows)))


@action("bs", "domain-add")
def domain_add(call: Call) -> HttpResponse:
    _manager_call(call)
    try:
        return _added(services.add_domain(call.account, call.params.required("domain")))
    except DomainError as exc:
        raise _v28(exc) from exc


@action("bs", "domain-del")
def domain_del(call: Call) -> HttpResponse:
    _manager_call(call)
    try:
        services.delete_domain(call.account, call.params.required("domain"), as_manager=True)
    except DomainError as exc:
        raise _v28(exc) from exc
    return result("success", _("domain deleted"))


@action("bs", "customer-domain-del")
def customer_domain_del(call: Call) -> HttpResponse:
    try:
        services.delete_domain(call.account, call.params.required("domain"))
    except DomainError as exc:
        raise _v28(exc) from exc
    return result("success", _("domain deleted"))


def _status(value: str) -> bool | None:
    if not value:
        return None
    if value.lower() in ("1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise param_error(_("status must be 1 (enabled) or 0 (disabled)"))


@action("bs", "mailbox-list")
def mailbox_list(call: Call) -> HttpResponse:
    p = call.params
    domain = p.required("domain")
    page = p.number("page", required=False)
    limit = p.number("limit", required=False) or MAILBOX_PAGE_DEFAULT
    if limit > MAILBOX_PAGE_MAX:
        raise param_error(_("limit must be at most %(max)s") % {"max": MAILBOX_PAGE_MAX})
    try:
        _total, rows = mailboxes.list_mailboxes(call.account, domain, page, limit)
    except DomainError as exc:
        raise _v28(exc) from exc
    return xml_response(el("mailbox_list", *(
        el("data", el("customer_id", call.account.pk), el("domain", box.domain.name), el("name", box.local_part),
           el("mailbox", box.address), el("status", "true" if box.enabled else "false")) for box in rows)))


@action("bs", "mailbox-add")
def mailbox_add(call: Call) -> HttpResponse:
    p = call.params
    address, password = p.required("mailbox"), p.get("pwd")
    if not password:
        raise param_error(_("pwd is required"))
    try:
        box = mailboxes.add_mailbox(call.account, address, password, enabled=_status(p.get("status")) is not False)
    except DomainError as exc:
        raise _v28(exc) from exc
    return result("success", box.pk, as_cdata=False)


@action("bs", "mailbox-del")
def mailbox_del(call: Call) -> HttpResponse:
    try:
        mailboxes.delete_mailbox(call.account, call.params.required("mailbox"))
    except DomainError as exc:
        raise _v28(exc) from exc
    return result("success", _("mailbox deleted"))


@action("bs", "mailbox-edit")
def mailbox_edit(call: Call) -> HttpResponse:
    p = call.params
    address = p.required("mailbox")
    password = p.get("pwd") or None
    enabled = _status(p.get("status"))
    try:
        mailboxes.edit_mailbox(call.account, address, password=password, enabled=enabled)
    except DomainError as exc:
        raise _v28(exc) from exc
    return result("success", _("mailbox updated"))
