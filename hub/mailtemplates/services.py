"""Templates: create, edit, delete, list, attachments, and who may use which (tenancy and
sharing). Both APIs and the admin call these; every query is filtered by the acting account
and another account's id is "not found". Every refusal is raised before anything is
written (validation first, then one transaction).

Sharing rule (V28 6.2 "templates shared with sub-accounts"): a template of a *manager*
account with `shared_with_subaccounts` set may be **used** (rendered, sent by a campaign,
previewed) by the manager's direct sub-accounts, one level as hub.tenancy. It stays the
manager's: only the owner lists it in 5.4, edits, deletes or changes its attachments
(`owned_template`); `usable_template` is what campaigns call."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from hub.headertext import has_controls
from hub.models import Account

from .models import MAX_NAME, MAX_SUBJECT, MAX_SUBJECTS, Template, TemplateAttachment

CHECK_TASK = "hub.mailtemplates.tasks.check_template"
_CONTENT_TYPE = re.compile(r"^[\w!#$&^.+-]{1,100}/[\w!#$&^.+-]{1,100}$")


class TemplateError(Exception):
    """Bad input, refused before anything was written. `code` is a short identifier the
    APIs answer with (V28 `<status>`, native `error.code`)."""

    http_status = 400

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = str(message)
        super().__init__(self.message)


class NotFound(TemplateError):
    http_status = 404

    def __init__(self, message: str = "") -> None:
        super().__init__("not_exist", message or _("no such template"))


class TooLarge(TemplateError):
    http_status = 413

    def __init__(self, message: str) -> None:
        super().__init__("too_large", message)


@dataclass
class FileIn:
    filename: str
    content_type: str
    content: bytes


# --- lookups ---------------------------------------------------------------------------------

def _pk(value) -> int:
    try:
        pk = int(str(value).strip())
    except (TypeError, ValueError):
        raise NotFound() from None
    if pk <= 0 or pk >= 2**63:
        raise NotFound()
    return pk


def templates(account: Account):
    """The account's own templates, by id."""
    return Template.objects.filter(account=account).order_by("id")


def owned_template(account: Account, template_id) -> Template:
    found = Template.objects.filter(account=account, pk=_pk(template_id)).first()
    if found is None:
        raise NotFound()
    return found


def usable_filter(account: Account) -> Q:
    """Templates `account` may use: its own, and its manager's shared ones."""
    q = Q(account=account)
    if account.parent_id:
        q |= Q(account_id=account.parent_id, account__is_manager=True, shared_with_subaccounts=True)
    return q


def usable_template(account: Account, template_id) -> Template:
    """A template `account` may send with (own, or shared by its manager); NotFound else."""
    found = Template.objects.filter(usable_filter(account), pk=_pk(template_id)).first()
    if found is None:
        raise NotFound()
    return found


def usable_templates(account: Account):
    return Template.objects.filter(usable_filter(account)).order_by("id")


# --- validation ------------------------------------------------------------------------------

def clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise TemplateError("invalid_name", _("name is required"))
    if len(name) > MAX_NAME or has_controls(name):
        raise TemplateError("invalid_name", _("name: at most %(n)s characters on one line") % {"n": MAX_NAME})
    return name


_BRACED = re.compile(r"(\{\{[^{}]*\}\})")


def _split_bars(value: str) -> list[str]:
    """Split at `|` except inside `{{...}}`, where `|` starts a placeholder's default."""
    items = [""]
    for i, piece in enumerate(_BRACED.split(value)):
        if i % 2:  # a braced part: kept whole
            items[-1] += piece
            continue
        first, *rest = piece.split("|")
        items[-1] += first
        items.extend(rest)
    return items


def split_subjects(value: str | list[str]) -> list[str]:
    """`主题一|主题二` (V28) or a list -> the subjects, trimmed, empty ones dropped."""
    items = _split_bars(value) if isinstance(value, str) else list(value)
    subjects = [str(s).strip() for s in items if str(s).strip()]
    if not subjects:
        raise TemplateError("invalid_subject", _("subject is required"))
    if len(subjects) > MAX_SUBJECTS:
        raise TemplateError("invalid_subject", _("at most %(n)s subjects") % {"n": MAX_SUBJECTS})
    for subject in subjects:
        if len(subject) > MAX_SUBJECT or has_controls(subject):
            raise TemplateError("invalid_subject",
                                _("each subject: at most %(n)s characters on one line") % {"n": MAX_SUBJECT})
    return subjects


def clean_body(value: str, field: str, required: bool) -> str:
    value = value or ""
    if required and not value.strip():
        raise TemplateError("invalid_content", _("%(field)s is required") % {"field": field})
    if len(value.encode("utf-8")) > settings.HUB_TEMPLATE_MAX_BODY_BYTES:
        raise TooLarge(_("%(field)s is over %(n)s bytes") % {"field": field, "n": settings.HUB_TEMPLATE_MAX_BODY_BYTES})
    if "\x00" in value:
        raise TemplateError("invalid_content", _("%(field)s contains a NUL character") % {"field": field})
    return value


def clean_encoding(value: str) -> str:
    value = (value or "").strip().lower() or Template.Encoding.BASE64
    if value not in Template.Encoding.values:
        raise TemplateError("invalid_encoding", _("encoding must be base64 or quoted-printable"))
    return value


def clean_files(files: list[FileIn], existing: list[TemplateAttachment] | None = None) -> list[FileIn]:
    """File names without client paths or controls, a content type, and the core's limits
    (HUB_MAX_ATTACHMENTS, HUB_MAX_ATTACHMENT_BYTES each, HUB_MAX_ATTACHMENTS_TOTAL_BYTES),
    counting the template's attachments already stored."""
    existing = existing or []
    if len(existing) + len(files) > settings.HUB_MAX_ATTACHMENTS:
        raise TemplateError("too_many_attachments",
                            _("at most %(n)s attachments per template") % {"n": settings.HUB_MAX_ATTACHMENTS})
    total = sum(a.size for a in existing)
    cleaned = []
    for f in files:
        name = (f.filename or "").strip().replace("\\", "/").rsplit("/", 1)[-1]
        if not name or len(name) > 255 or has_controls(name) or '"' in name:
            raise TemplateError("invalid_attachment", _("bad attachment file name: %(name)s") % {"name": repr(name[:80])})
        if len(f.content) > settings.HUB_MAX_ATTACHMENT_BYTES:
            raise TooLarge(_("%(name)s is over %(n)s bytes") % {"name": name, "n": settings.HUB_MAX_ATTACHMENT_BYTES})
        total += len(f.content)
        if total > settings.HUB_MAX_ATTACHMENTS_TOTAL_BYTES:
            raise TooLarge(_("attachments over %(n)s bytes in total") % {"n": settings.HUB_MAX_ATTACHMENTS_TOTAL_BYTES})
        content_type = (f.content_type or "").split(";")[0].strip().lower()
        if not _CONTENT_TYPE.match(content_type) or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        cleaned.append(FileIn(name, content_type, f.content))
    return cleaned


# --- writes ----------------------------------------------------------------------------------

def mark_changed(template: Template) -> None:
    """A change of content or attachments: a new revision (so compiled copies are dropped)
    and a new check, queued once the change is committed."""
    template.revision += 1 if template.pk else 0
    template.updated_at = timezone.now()
    template.check_status = Template.CheckStatus.CHECKING
    template.colour = ""
    template.size_status = -1
    template.red_pass_by = ""


def queue_check(template: Template) -> None:
    from django_q.tasks import async_task

    pk, revision = template.pk, template.revision
    transaction.on_commit(lambda: async_task(CHECK_TASK, pk, revision))


def _add_files(template: Template, files: list[FileIn]) -> list[TemplateAttachment]:
    return TemplateAttachment.objects.bulk_create([
        TemplateAttachment(template=template, filename=f.filename, content_type=f.content_type, content=f.content,
                           size=len(f.content)) for f in files])


def create_template(account: Account, *, name: str, subjects, html: str, text: str = "", encoding: str = "",
                    shared: bool = False, files: list[FileIn] | None = None) -> Template:
    template = Template(account=account, name=clean_name(name), subjects=split_subjects(subjects),
                        html=clean_body(html, "content", True), text=clean_body(text, "text_content", False),
                        encoding=clean_encoding(encoding), shared_with_subaccounts=bool(shared))
    cleaned = clean_files(files or [])
    mark_changed(template)
    with transaction.atomic():
        template.save()
        _add_files(template, cleaned)
        queue_check(template)
    return template


def update_template(account: Account, template_id, *, name: str | None = None, subjects=None,
                    html: str | None = None, text: str | None = None, encoding: str | None = None,
                    shared: bool | None = None) -> Template:
    """Only the given fields change (None = unchanged); an empty `text` clears it (the text
    body is generated again). Refused when nothing is given."""
    template = owned_template(account, template_id)
    if all(v is None for v in (name, subjects, html, text, encoding, shared)):
        raise TemplateError("nothing_to_change", _("nothing to change"))
    if name is not None:
        template.name = clean_name(name)
    if subjects is not None:
        template.subjects = split_subjects(subjects)
    if html is not None:
        template.html = clean_body(html, "content", True)
    if text is not None:
        template.text = clean_body(text, "text_content", False)
    if encoding is not None:
        template.encoding = clean_encoding(encoding)
    if shared is not None:
        template.shared_with_subaccounts = bool(shared)
    mark_changed(template)
    with transaction.atomic():
        template.save()
        queue_check(template)
    return template


def delete_template(account: Account, template_id) -> None:
    template = owned_template(account, template_id)
    template.delete()  # attachments cascade


def add_attachments(account: Account, template_id, files: list[FileIn]) -> list[TemplateAttachment]:
    if not files:
        raise TemplateError("param_error", _("no file given"))
    with transaction.atomic():
        template = owned_template(account, template_id)
        Template.objects.select_for_update().filter(pk=template.pk).first()  # one writer per template
        cleaned = clean_files(files, list(template.attachments.only("id", "size")))
        added = _add_files(template, cleaned)
        touch(template)
    return added


def delete_attachments(account: Account, template_id, attachment_id: str = "all") -> int:
    """Delete one attachment (its id) or, with "all" or "" (V28 5.8's default), every one.
    Returns how many were deleted; an unknown attachment id is "not found"."""
    template = owned_template(account, template_id)
    attachment_id = (attachment_id or "all").strip().lower()
    rows = template.attachments.all()
    if attachment_id != "all":
        try:
            pk = _pk(attachment_id)
        except NotFound:
            raise NotFound(_("no such attachment")) from None
        rows = rows.filter(pk=pk)
        if not rows.exists():
            raise NotFound(_("no such attachment"))
    with transaction.atomic():
        deleted, _detail = rows.delete()
        if deleted:
            touch(template)
    return deleted


def touch(template: Template) -> None:
    """Attachments changed: the message (and its size) changed, check it again."""
    mark_changed(template)
    Template.objects.filter(pk=template.pk).update(
        revision=F("revision") + 1, updated_at=template.updated_at, check_status=template.check_status,
        colour="", size_status=-1, red_pass_by="")
    template.refresh_from_db()
    queue_check(template)


def red_pass(template: Template, operator: str) -> bool:
    """An operator lets a red template send (V28 `red_pass`). Only a checked red one; the
    next change of the template checks it again and clears the pass."""
    updated = Template.objects.filter(pk=template.pk, revision=template.revision, colour=Template.Colour.RED).update(
        colour=Template.Colour.RED_PASS, check_status=Template.CheckStatus.PASSED, red_pass_by=operator[:150])
    return bool(updated)
