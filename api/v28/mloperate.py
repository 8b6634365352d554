"""V28 chapter 4, `mloperate.php`: contact lists (4.1-4.6). The addresses (4.7-4.13) are in
addresses.py. Every action calls hub.contacts.services with the acting account; the
services answer "not found" for another account's ids."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from hub.contacts import services

from . import addresses as _addresses  # noqa: F401  (registers 4.7-4.13)
from .addresses import service_error
from .core import Call, V28Error, action, result, xml_response
from .xml import el

STATUSES = ("enabled", "disabled")


def _list_fields(ml) -> list:
    return [
        el("id", ml.pk),
        el("subject", ml.name),
        el("description", ml.description),
        el("count", ml.contact_count),
        el("input_status", 1 if ml.importing else 0),
        el("status", "enabled" if ml.enabled else "disabled"),
    ]


def _status(value: str, ident: str) -> bool | None:
    if not value:
        return None
    if value not in STATUSES:
        raise V28Error(ident, _("status must be enabled or disabled"), 400)
    return value == "enabled"


def get_list(call: Call, list_id: int):
    try:
        return services.get_list(call.account, list_id)
    except services.ContactError as exc:
        raise service_error(exc) from exc


@action("mloperate", "maillist-list")
def maillist_list(call: Call) -> HttpResponse:
    items = [el("item", *_list_fields(ml)) for ml in services.lists(call.account)]
    return xml_response(el("maillist", *items))


@action("mloperate", "maillist-detail")
def maillist_detail(call: Call) -> HttpResponse:
    ml = get_list(call, call.params.number("id"))
    # The sample closes the root as </aillist> [sic]; the opening tag wins ((e) #12).
    return xml_response(el("maillist", *_list_fields(ml)))


@action("mloperate", "maillist-add", methods=("POST",))
def maillist_add(call: Call) -> HttpResponse:
    p = call.params
    subject = p.get("subject")
    if not subject:
        raise V28Error("add_maillist_error", _("subject is required"), 400)
    raw_status = p.get("status")
    if not raw_status:
        raise V28Error("add_maillist_error", _("status is required (enabled or disabled)"), 400)
    enabled = _status(raw_status, "add_maillist_error")
    description = p.get("description", max_chars=10_000)  # the service bounds it (its own message)
    try:
        with transaction.atomic():
            ml = services.create_list(call.account, subject, description)
            if not enabled:
                ml = services.update_list(call.account, ml.pk, enabled=False)
    except services.ContactError as exc:
        raise service_error(exc, "add_maillist_error") from exc
    # The sample shows the new id as plain text: <data>78</data>.
    return result("success", ml.pk, as_cdata=False)


@action("mloperate", "maillist-edit", methods=("POST",))
def maillist_edit(call: Call) -> HttpResponse:
    p = call.params
    list_id = p.number("id")
    changes: dict = {}
    if subject := p.get("subject"):
        changes["name"] = subject
    enabled = _status(p.get("status"), "update_maillist_error")
    if enabled is not None:
        changes["enabled"] = enabled
    if p._lookup(p.body, "description") is not None or p._lookup(p.query, "description") is not None:
        changes["description"] = p.get("description", max_chars=10_000)  # may be emptied; the service bounds it
    get_list(call, list_id)  # not_exist before "nothing to change"
    if not changes:
        raise V28Error("update_maillist_error", _("nothing to change: send subject, status or description"), 400)
    try:
        services.update_list(call.account, list_id, **changes)
    except services.ContactError as exc:
        raise service_error(exc, "update_maillist_error") from exc
    return result("success", _("contact list updated"))


@action("mloperate", "maillist-del")
def maillist_del(call: Call) -> HttpResponse:
    list_id = call.params.number("id")
    try:
        services.delete_list(call.account, list_id)
    except services.ContactError as exc:
        raise service_error(exc, "delete_maillist_error") from exc
    return result("success", _("contact list deleted"))


@action("mloperate", "unsubscribe-export")
def unsubscribe_export(call: Call) -> HttpResponse:
    """Plain text, one `YYYY-MM-DD HH:MM:SS<TAB>email` line per unsubscribed address
    ((e) #26), streamed: a list may have a million of them."""
    ml = get_list(call, call.params.number("id"))  # refuse before the answer starts
    rows = services.unsubscribed_contacts(call.account, ml.pk)

    def lines():
        for contact in rows:
            when = timezone.localtime(contact.unsubscribed_at).strftime("%Y-%m-%d %H:%M:%S") \
                if contact.unsubscribed_at else ""
            yield f"{when}\t{contact.email}\n".encode()

    response = StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="unsubscribe-{ml.pk}.txt"'
    return response

