"""V28 chapter 5, `template.php`: templates (5.2-5.8). Every action calls
hub.mailtemplates.services with the acting account; another account's ids are
`not_exist`. Refusals are raised before the service writes anything."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from hub.mailtemplates import services
from hub.mailtemplates.models import Template

from .core import Call, V28Error, action, param_error, result, xml_response
from .xml import cdata, el

CONTENT_TYPE_HTML = "text/html"


def _error(exc: services.TemplateError) -> V28Error:
    return V28Error(exc.code, exc.message, exc.http_status)


def _time(dt) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%d %H:%M:%S") if dt else ""


def _files(call: Call) -> list[services.FileIn]:
    """The uploads of `file` and `file[]` (5.2, 5.7). A `file` sent as an ordinary field
    (PHP's old '@path' string when CURLOPT_SAFE_UPLOAD is on) is refused rather than lost."""
    request = call.request
    if request.method != "POST":
        return []
    for name in ("file", "file[]"):
        if name in request.POST:
            raise param_error(_("%(name)s must be a file in a multipart/form-data body") % {"name": name})
    uploads = [*request.FILES.getlist("file"), *request.FILES.getlist("file[]")]
    files = []
    for upload in uploads:
        if upload.size > settings.HUB_MAX_ATTACHMENT_BYTES:  # before reading it into memory
            raise V28Error("too_large", _("%(name)s is over %(n)s bytes") % {
                "name": upload.name, "n": settings.HUB_MAX_ATTACHMENT_BYTES}, 413)
        files.append(services.FileIn(upload.name or "", upload.content_type or "", upload.read()))
    return files


def _body(call: Call, name: str) -> str:
    return call.params.get(name, max_chars=settings.HUB_TEMPLATE_MAX_BODY_BYTES)


def _given(call: Call, name: str) -> bool:
    p = call.params
    return p._lookup(p.body, name) is not None or p._lookup(p.query, name) is not None


def _owned(call: Call) -> Template:
    try:
        return services.owned_template(call.account, call.params.number("tpl_id"))
    except services.TemplateError as exc:
        raise _error(exc) from exc


@action("template", "add-tpl", methods=("POST",), upload=True)
def add_tpl(call: Call) -> HttpResponse:
    p = call.params
    name, subject, content = p.required("name"), p.required("subject"), _body(call, "content")
    if not content:
        raise param_error(_("%(name)s is required") % {"name": "content"})
    files = _files(call)
    try:
        template = services.create_template(call.account, name=name, subjects=subject, html=content,
                                            text=_body(call, "text_content"), encoding=p.get("encoding"),
                                            files=files)
    except services.TemplateError as exc:
        raise _error(exc) from exc
    # "On success returns the new template's id": plain text, as 4.3's new list id.
    return result("success", template.pk, as_cdata=False)


@action("template", "get-tpl-status")
def get_tpl_status(call: Call) -> HttpResponse:
    t = _owned(call)
    checking = t.check_status == Template.CheckStatus.CHECKING
    return xml_response(el(
        "template",
        el("id", t.pk),
        el("name", t.name),
        el("status", t.check_status),
        el("colour", "" if checking else t.colour),
        el("update_date", _time(t.updated_at)),
        el("size_status", t.size_status),
        el("size", t.size_kb if t.size_status == 1 else 0),
        el("subject", "|".join(t.subjects)),  # the sample has one <subject>: ours joined as sent
    ))


def _template_el(t: Template):
    return el(
        "template",
        el("id", t.pk),
        el("user_id", t.account_id),
        cdata("name", t.name),
        # Subject ids are their positions (1, 2, ...): an edit replaces the whole list.
        *(el("subject", el("id", i), cdata("name", s)) for i, s in enumerate(t.subjects, 1)),
        cdata("content", t.html),
        el("content_type", CONTENT_TYPE_HTML),
        el("attachments", *(el("attachment", el("atta_id", a.pk), el("atta_name", a.filename))
                            for a in t.attachments.all())),
        el("created", _time(t.created_at)),
        el("updated", _time(t.updated_at)),
    )


@action("template", "list-tpl")
def list_tpl(call: Call) -> HttpResponse:
    if call.params.get("tpl_id"):
        rows = [_owned(call)]
    else:
        rows = list(services.templates(call.account).prefetch_related("attachments"))
    return xml_response(el("template_list", *(_template_el(t) for t in rows)))


@action("template", "del-tpl")
def del_tpl(call: Call) -> HttpResponse:
    t = _owned(call)
    services.delete_template(call.account, t.pk)
    return result("success", _("template deleted"))


@action("template", "edit-tpl", upload=False)
def edit_tpl(call: Call) -> HttpResponse:
    p = call.params
    t = _owned(call)
    changes: dict = {}
    if name := p.get("name"):
        changes["name"] = name
    if subject := p.get("subject"):
        changes["subjects"] = subject
    if content := _body(call, "content"):
        changes["html"] = content
    if _given(call, "text_content"):
        changes["text"] = _body(call, "text_content")  # sent empty: cleared, generated again
    if encoding := p.get("encoding"):
        changes["encoding"] = encoding
    if not changes:
        raise param_error(_("send at least one of name, subject, content (or text_content, encoding)"))
    try:
        services.update_template(call.account, t.pk, **changes)
    except services.TemplateError as exc:
        raise _error(exc) from exc
    return result("success", _("template updated"))


@action("template", "tpl-attachment-add", methods=("POST",), upload=True)
def tpl_attachment_add(call: Call) -> HttpResponse:
    t = _owned(call)
    files = _files(call)
    if not files:
        raise param_error(_("file is required (multipart/form-data field \"file\" or \"file[]\")"))
    try:
        added = services.add_attachments(call.account, t.pk, files)
    except services.TemplateError as exc:
        raise _error(exc) from exc
    # Not documented: the new attachment ids, comma-separated (for 5.8's attachment_id).
    return result("success", ",".join(str(a.pk) for a in added), as_cdata=False)


@action("template", "tpl-attachment-del")
def tpl_attachment_del(call: Call) -> HttpResponse:
    t = _owned(call)
    try:
        deleted = services.delete_attachments(call.account, t.pk, call.params.get("attachment_id") or "all")
    except services.TemplateError as exc:
        raise _error(exc) from exc
    return result("success", _("%(n)s attachment(s) deleted") % {"n": deleted})
