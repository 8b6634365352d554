"""V28 chapter 4, `mloperate.php`: the addresses of a list (4.7-4.13)."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from hub.contacts import services
from hub.contacts.models import VAR_FIELDS

from .core import (
    BODY_ONLY,
    CONTENT_TYPE,
    QUERY_ONLY,
    Call,
    V28Error,
    action,
    not_exist,
    param_error,
    result,
    xml_response,
)
from .xml import Element, cdata, el, render_stream

# 4.7 `limit` default (the reference's) and our cap on it (the reference states none).
PAGE_DEFAULT = 50
PAGE_MAX = 500
# Rows per database round trip when 4.7 streams a whole list (no `page`).
STREAM_CHUNK = 1000
# 4.13 lists this many import jobs, newest first (the reference has no paging).
IMPORT_LOG_MAX = 100
SINGLE_FIELDS = ("fullname", "sex", "birthday", "phone", "area", *VAR_FIELDS)


def service_error(exc: services.ContactError, ident: str = "") -> V28Error:
    """A service's refusal as our answer: `not_exist` (404) for unknown or foreign ids,
    otherwise `ident` (the reference's identifier for the action, 4.3-4.5) or the
    service's own code, HTTP 400."""
    if isinstance(exc, services.NotFound):
        return not_exist(exc.message)
    return V28Error(ident or exc.code, exc.message, 400)


_error = service_error


def _local(dt) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%d %H:%M:%S") if dt else ""


def _addr(contact) -> Element:
    """4.7 `<addr>`, in the sample's order; `brithday` [sic] as clients parse it; CDATA
    where the sample shows it (address, area, fullname); no `sex` (the sample has none)."""
    return el(
        "addr",
        el("id", contact.pk),
        el("list_id", contact.mail_list_id),
        cdata("address", contact.email),
        el("brithday", contact.birthday.isoformat() if contact.birthday else ""),
        el("phone", contact.phone),
        cdata("area", contact.area),
        cdata("fullname", contact.fullname),
        el("time", _local(contact.created_at)),
        *(el(name, getattr(contact, name)) for name in VAR_FIELDS),
    )


def _refuse_malformed(errors: list[str]) -> None:
    """Any malformed record refuses the whole call (nothing written), listing the reasons:
    a client fixes its data and sends again instead of guessing what got in."""
    if errors:
        raise V28Error("format_error", "; ".join(errors[:50]), 400)




def _require_list(call: Call, list_id: int) -> None:
    """`not_exist` for another account's list comes before any complaint about the data."""
    try:
        services.get_list(call.account, list_id)
    except services.ContactError as exc:
        raise service_error(exc) from exc


def _batch_limit(count: int, what: str) -> None:
    limit = settings.HUB_CONTACTS_BATCH_MAX
    if count > limit:
        raise V28Error("too_many_records", _("%(what)s has %(count)s records; at most %(limit)s per call "
                                             "(use ml-addr-add-file for more)")
                       % {"what": what, "count": count, "limit": limit}, 400)


@action("mloperate", "ml-addr-list")
def ml_addr_list(call: Call) -> HttpResponse:
    p = call.params
    # "list_id must be sent by GET" (4.7): a POSTed list_id is ignored, not an error.
    raw_list = p.get("list_id", source=QUERY_ONLY)
    if raw_list and not (raw_list.isascii() and raw_list.isdigit() and len(raw_list) < 19):
        raise param_error(_("list_id must be a whole number"))
    list_id = int(raw_list) if raw_list else None
    address_id = p.number("address_id", required=False, minimum=0) or None
    keyword = p.get("keyword")
    page = p.number("page", required=False)
    limit = p.number("limit", required=False) or PAGE_DEFAULT
    if limit > PAGE_MAX:
        raise param_error(_("limit must be at most %(max)s") % {"max": PAGE_MAX})
    if list_id == 0:
        # "0 = unclassified addresses": every contact here belongs to a list, so none.
        return xml_response(el("data", el("total_num", 0)))
    if list_id is not None:
        try:
            services.get_list(call.account, list_id)
        except services.ContactError as exc:
            raise _error(exc) from exc
    if address_id:
        try:
            contact = services.get_contact(call.account, address_id)
        except services.ContactError as exc:
            raise _error(exc) from exc
        if list_id is not None and contact.mail_list_id != list_id:
            raise not_exist(_("address not found"))
        return xml_response(el("data", el("total_num", 1), _addr(contact)))
    if page is not None:
        total, rows = services.search_contacts(call.account, list_id, keyword=keyword,
                                               offset=(page - 1) * limit, limit=limit)
        return xml_response(el("data", el("total_num", total), *(_addr(c) for c in rows)))
    # No page: everything ("否则为查找全部"), streamed by id cursor so a million-row list
    # costs neither the server's memory nor one huge query.
    total, first = services.search_contacts(call.account, list_id, keyword=keyword, limit=STREAM_CHUNK)

    def rows() -> Iterator[Element]:
        chunk = first
        while chunk:
            yield from (_addr(c) for c in chunk)
            if len(chunk) < STREAM_CHUNK:
                return
            _total, chunk = services.search_contacts(call.account, list_id, keyword=keyword,
                                                     after_id=chunk[-1].pk, limit=STREAM_CHUNK)

    return StreamingHttpResponse(render_stream("data", [el("total_num", total)], rows()),
                                 content_type=CONTENT_TYPE)


def _single_fields(call: Call) -> dict:
    fields = {}
    for name in SINGLE_FIELDS:
        value = call.params.get(name)  # var1..var10 also as Var10
        if value:
            fields[name] = value
    return fields


@action("mloperate", "ml-addr-add")
def ml_addr_add(call: Call) -> HttpResponse:
    """4.8.1 (one address) and 4.8.2 (`ml_addr` batch): the presence of `ml_addr` decides
    ((e) #22)."""
    p = call.params
    list_id = p.number("list_id")
    has_batch = p._lookup(p.body, "ml_addr") is not None or p._lookup(p.query, "ml_addr") is not None
    if has_batch:
        return _add_batch(call, list_id)
    address = p.required("address")
    return_id = p.get("return_id")
    if return_id not in ("", "0", "1"):
        raise param_error(_("return_id must be 0 or 1"))
    try:
        contact = services.add_contact(call.account, list_id, address, **_single_fields(call))
    except services.ContactError as exc:
        raise _error(exc) from exc
    if return_id == "1":
        return result("success", contact.pk)
    return result("success", _("address added"))


def _add_batch(call: Call, list_id: int) -> HttpResponse:
    p = call.params
    addr_type = p.get("addr_type") or "string"
    if addr_type != "string":
        raise param_error(_("addr_type must be string"))
    _require_list(call, list_id)
    separate = p.get("separate")
    # What clients send for the default: nothing, a real newline, or the two characters \n.
    separator = "\n" if separate in ("", "\\n", "\n", "\r\n") else separate
    text = p.get("ml_addr", source=BODY_ONLY, max_chars=settings.HUB_V28_MAX_REQUEST_BYTES)
    if not text:
        raise param_error(_("ml_addr is empty"))
    records = services.parse_batch(text, separator)
    if not records:
        raise param_error(_("ml_addr holds no address"))
    _batch_limit(len(records), "ml_addr")
    _refuse_malformed(services.invalid_records(records))
    try:
        outcome = services.add_contacts(call.account, list_id, records)
    except services.ContactError as exc:
        raise _error(exc) from exc
    # (e) #20: data = the number of records added.
    return result("success", outcome.added)


@action("mloperate", "ml-addr-add-file", methods=("POST",), upload=True)
def ml_addr_add_file(call: Call) -> HttpResponse:
    p = call.params
    list_id = p.number("list_id")
    upload = call.request.FILES.get("file")
    if upload is None:
        raise param_error(_("file is required (multipart/form-data field \"file\")"))
    try:
        job = services.start_import(call.account, list_id, upload, upload.name or "upload")
    except services.ContactError as exc:
        raise _error(exc) from exc
    return result("success", job.pk)


@action("mloperate", "ml-addr-add-file-query")
def ml_addr_add_file_query(call: Call) -> HttpResponse:
    raw = call.params.get("id")
    if not (raw.isascii() and raw.isdigit() and len(raw) < 19) or int(raw) < 1:
        # The reference's own identifier for a parameter error here.
        raise V28Error("error", _("id is required and must be a whole number"), 400)
    try:
        job = services.get_import(call.account, int(raw))
    except services.ContactError as exc:
        raise _error(exc) from exc
    if job.status == 1:
        return result("success", _("parsing complete"))
    if job.finished:
        return result("import_error", job.error or _("the import failed (status %(status)s)") % {"status": job.status})
    return result("no_complete", _("still parsing (%(progress)s%%)") % {"progress": job.progress})


@action("mloperate", "ml-addr-del")
def ml_addr_del(call: Call) -> HttpResponse:
    try:
        services.delete_contact(call.account, call.params.number("id"))
    except services.ContactError as exc:
        raise _error(exc) from exc
    return result("success", _("address deleted"))


@action("mloperate", "ml-addr-empty")
def ml_addr_empty(call: Call) -> HttpResponse:
    try:
        removed = services.empty_list(call.account, call.params.number("list_id"))
    except services.ContactError as exc:
        raise _error(exc) from exc
    return result("success", _("%(count)s addresses removed") % {"count": removed})


@action("mloperate", "ml-sub")
def ml_sub(call: Call) -> HttpResponse:
    p = call.params
    list_id = p.number("list_id")
    _require_list(call, list_id)
    address = p.get("address")
    batch = p.get("maillist", max_chars=settings.HUB_V28_MAX_REQUEST_BYTES)
    if not address and not batch:
        raise param_error(_("address or maillist is required"))
    entries = [(address, p.get("name"))] if address else services.parse_subscribe(batch)
    if not entries:
        raise param_error(_("maillist holds no address"))
    _batch_limit(len(entries), "maillist")
    _refuse_malformed(services.invalid_addresses([email for email, _name in entries]))
    try:
        outcome = services.subscribe(call.account, list_id, entries)
    except services.ContactError as exc:
        raise _error(exc) from exc
    return result("success", _batch_message(outcome))


@action("mloperate", "ml-unsub")
def ml_unsub(call: Call) -> HttpResponse:
    p = call.params
    list_id = p.number("list_id")
    _require_list(call, list_id)
    text = p.get("address", max_chars=settings.HUB_V28_MAX_REQUEST_BYTES)
    if not text:
        raise param_error(_("address is required"))
    emails = services.parse_unsubscribe(text)
    if not emails:
        raise param_error(_("address holds no address"))
    _batch_limit(len(emails), "address")
    _refuse_malformed(services.invalid_addresses(emails))
    try:
        outcome = services.unsubscribe(call.account, list_id, emails)
    except services.ContactError as exc:
        raise _error(exc) from exc
    return result("success", _batch_message(outcome))


def _batch_message(outcome) -> str:
    return _("%(added)s done, %(invalid)s invalid, %(duplicate)s unchanged") % {
        "added": outcome.added, "invalid": outcome.invalid, "duplicate": outcome.duplicate}


@action("mloperate", "ml-addr-add-log")
def ml_addr_add_log(call: Call) -> HttpResponse:
    jobs = services.imports(call.account).select_related("mail_list")[:IMPORT_LOG_MAX]
    logs = [
        el("address_log",
           el("filename", job.filename),
           # Never the server's path ((e) #27): the stored file's own name.
           el("filepath", job.stored_name.rpartition("/")[2]),
           el("time_import", _local(job.created_at)),
           el("count_all", job.count_all),
           el("count_err_1", job.count_invalid),
           el("count_err_2", job.count_duplicate),
           el("status", job.status),
           el("subject", job.mail_list.name))
        for job in jobs
    ]
    return xml_response(el("result", el("status", "success"), el("data", *logs)))
