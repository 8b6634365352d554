"""Send logs in the back office: read-only, filterable, searchable, exportable, with a safe
preview of the HTML body and a "resend" that queues a copy through the normal pipeline.

The list never counts the table (see common.InfinitePaginator): it costs the same
few queries with ten rows or ten million.

Over 400 lines on purpose: one ModelAdmin with its views (preview, resend, export,
attachments); each view is small, and they share the page's queryset rules."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from email.utils import getaddresses
from urllib.parse import quote

from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.defaultfilters import truncatechars
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.clickjacking import xframe_options_sameorigin
from unfold.admin import TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.decorators import action, display
from unfold.enums import ActionVariant

from ..models import SendLog
from ..sending import FileIn, Refusal, SendRequest, accept, accept_raw
from ..textify import html_to_text
from .common import HubModelAdmin, LocalDateRangeFilter, WindowPaginationMixin, has_field, per_object
from .dashboard import forget_cached

STATUS_LABELS = {
    SendLog.Status.QUEUED: "info",
    SendLog.Status.SENDING: "info",
    SendLog.Status.RETRYING: "warning",
    SendLog.Status.SENT: "success",
    SendLog.Status.FAILED: "danger",
}

# The preview runs the stored HTML in a sandbox: no scripts, no plugins, no forms, no
# navigation, no network (only inline styles and data: images), its own opaque origin.
PREVIEW_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox")

# A resend from the list takes at most this many rows at once: a slip of "select all"
# must not queue thousands of duplicates.
MAX_BULK_RESEND = 100

CSV_COLUMNS = [
    ("id", "id"), ("created_at", "created"), ("app_id", "appid"), ("app__name", "app"),
    ("smtp_server__name", "smtp_server"), ("from_email", "from"), ("from_name", "from_name"), ("to", "to"),
    ("cc", "cc"), ("bcc", "bcc"), ("subject", "subject"), ("status", "status"), ("attempts", "attempts"),
    ("smtp_code", "smtp_code"), ("smtp_reply", "smtp_reply"), ("error", "error"), ("message_id", "message_id"),
    ("client_ip", "client_ip"), ("sent_at", "sent"),
]

# The CSV is read in pages of this many rows, each its own query (id > last, LIMIT n):
# .iterator() does not stream on MySQL/MariaDB (the driver buffers the whole result).
CSV_CHUNK = 2000

# The detail page shows at most this many characters of a body (text, HTML source); a
# message of several MB would make the page itself that large, and slow to build.
DISPLAY_LIMIT = 100_000


def _truncated(text: str, limit: int) -> tuple[str, str]:
    """(the first `limit` characters, a note saying how much was left out or "")."""
    if len(text) <= limit:
        return text, ""
    return text[:limit], _("Showing the first %(shown)s of %(total)s characters.") % {
        "shown": formats.number_format(limit, force_grouping=True),
        "total": formats.number_format(len(text), force_grouping=True)}


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    text = str(value)
    # A cell starting like a formula would run in a spreadsheet (CSV injection).
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


def _note(text: str) -> str:
    return format_html('<p class="hub-truncated text-subtle text-sm">{}</p>', text) if text else ""


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_rows(queryset) -> Iterator[str]:
    """The CSV, one line at a time, read a page of CSV_CHUNK rows at a time by id (keyset
    paging on the primary key): memory stays flat for any row count on every database, and
    no query holds a cursor open while the client downloads. It starts with a BOM so
    spreadsheet programs read the UTF-8 (Chinese subjects) right."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow([header for _f, header in CSV_COLUMNS])
    fields = [f for f, _h in CSV_COLUMNS]  # "id" first: the page's last id is the next key
    rows = queryset.order_by("id").values_list(*fields)
    last = None
    while True:
        page = list((rows if last is None else rows.filter(id__gt=last))[:CSV_CHUNK])
        for values in page:
            yield writer.writerow([_csv_cell(v) for v in values])
        if len(page) < CSV_CHUNK:
            return
        last = page[-1][0]


def csv_response(queryset) -> StreamingHttpResponse:
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(csv_rows(queryset.order_by("id")), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="send-logs-{stamp}.csv"'
    return response


def resend(row: SendLog) -> SendLog:
    """Queue a copy of `row` as a new message of the same app, through the same rules as
    the API (validation, suppression list, the app's servers), with its attachments and
    calendar event; an SMTP submission is relayed again as the client's own MIME message.
    The copy is marked as made in the admin and linked to the original. Raises Refusal.
    A campaign's row stores no body (it is rendered at delivery): not resent from here."""
    if row.campaign_id is not None:
        raise Refusal("bad_request", "a campaign message is rendered at delivery and cannot be resent from the log")
    with transaction.atomic():
        if row.raw_message is not None:
            rcpts = [addr for _name, addr in getaddresses([row.rcpt_to or ", ".join(
                t for t in (row.to, row.cc, row.bcc) if t)]) if addr]
            copy = accept_raw(row.app, rcpts, bytes(row.raw_message), client_ip=None)
        else:
            files = [FileIn(a.filename, a.content_type, bytes(a.content)) for a in row.attachments.all()]
            event = {k: str(v) for k, v in row.event.items()} if row.event else None
            req = SendRequest(to=row.to, subject=row.subject, message=row.html_body, to_name=row.to_name,
                              from_name=row.from_name, cc=row.cc, bcc=row.bcc, reply_to=row.reply_to,
                              text=row.text_body, attachments=files, event=event)
            copy = accept(row.app, req, client_ip=None)
        mark_admin_made(copy, resent_from=row)
    return copy


def mark_admin_made(row: SendLog, resent_from: SendLog | None = None) -> None:
    """Record that a message was made in the admin (and what it resends). Committed with
    the row when called inside the same transaction as accept()."""
    fields = {"source": SendLog.Source.ADMIN}
    if resent_from is not None:
        fields["resent_from"] = resent_from
    SendLog.objects.filter(pk=row.pk).update(**fields)
    for name, value in fields.items():
        setattr(row, name, value)


def _optional_inlines() -> list:
    """EXTENSION POINT (reliability): the delivery attempts of a message, when the model
    exists; each try with its server, result and SMTP reply."""
    try:
        from ..models import DeliveryAttempt
    except ImportError:
        return []

    class DeliveryAttemptInline(TabularInline):
        model = DeliveryAttempt
        fields = ("started_at", "server", "result", "smtp_code", "smtp_reply", "error", "duration_ms")
        readonly_fields = fields
        extra = 0
        can_delete = False
        verbose_name_plural = gettext_lazy("delivery attempts")
        hide_title = True  # the row's columns say which attempt it is; no title line above each

        def get_queryset(self, request: HttpRequest):
            # The server column: one join, not one query per attempt.
            return super().get_queryset(request).select_related("server")

        def has_add_permission(self, request, obj=None) -> bool:
            return False

        def has_change_permission(self, request, obj=None) -> bool:
            return False

        def has_delete_permission(self, request, obj=None) -> bool:
            return False

    return [DeliveryAttemptInline]


@admin.register(SendLog)
class SendLogAdmin(WindowPaginationMixin, HubModelAdmin):
    list_display = ("id", "created", "app", "recipient", "subject_short", "status_label", "server_name",
                    "attempts")
    list_display_links = ("id", "subject_short")
    list_select_related = ("app", "smtp_server")
    list_filter = (
        ("status", ChoicesDropdownFilter),
        ("source", ChoicesDropdownFilter),
        ("app", RelatedDropdownFilter),
        ("smtp_server", RelatedDropdownFilter),
        ("created_at", LocalDateRangeFilter),
    )
    list_filter_submit = True
    list_per_page = 50
    search_fields = ("to", "subject", "message_id")
    search_help_text = gettext_lazy("Recipient, subject or Message-ID")
    ordering = ("-id",)
    actions = ("resend_selected", "export_selected_csv")
    actions_detail = ("resend_one",)
    list_before_template = "admin/hub/sendlog/list_before.html"
    warn_unsaved_form = False

    def get_inlines(self, request: HttpRequest, obj: SendLog | None):
        return _optional_inlines()

    # -- read-only: logs are an audit record

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SendLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SendLog | None = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest, obj=None) -> bool:
        # A resend writes a new send log: the model's "add" permission says who may.
        return request.user.has_perm(f"{self.opts.app_label}.add_{self.opts.model_name}")

    def has_export_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_view_permission(request)

    # -- search: exact look-ups first, they use an index

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        term = search_term.strip()
        if term.startswith("<") and term.endswith(">") and "@" in term:
            return queryset.filter(message_id=term), False
        if term.startswith("#") and term[1:].isdigit() and len(term) < 20:
            return queryset.filter(pk=int(term[1:])), False
        return super().get_search_results(request, queryset, search_term)

    # -- the detail page

    def get_fieldsets(self, request: HttpRequest, obj: SendLog | None = None):
        outcome = ["error"]
        if has_field(SendLog, "failure_type"):  # EXTENSION POINT (reliability): bounce class
            outcome.append("failure_type")
        return [
            (None, {"fields": [("status_badge", "attempts", "smtp_server"), ("app", "source", "resends_display"),
                               "from_display", ("to", "to_name"), ("cc", "bcc", "reply_to"), "rcpt_to", "subject"]}),
            (gettext_lazy("Content"), {"fields": ["preview", "text_display", "html_source", "attachments_display",
                                                 "event_display"]}),
            (gettext_lazy("Delivery"), {"fields": [("smtp_code", "smtp_reply"), tuple(outcome), "refused_table",
                                                   ("created_at", "sent_at"), ("claimed_at", "next_attempt_at")]}),
            # The Message-ID gets a line of its own: it is often longer than a third of the page.
            (gettext_lazy("Tracking"), {"fields": ["message_id", ("client_ip", "idempotency_key"), "updated_at",
                                                   "audit_trail"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: SendLog | None = None):
        names = []
        for _name, opts in self.get_fieldsets(request, obj):
            for line in opts["fields"]:
                names.extend(line if isinstance(line, tuple) else [line])
        return names

    @display(description=gettext_lazy("status"), label=STATUS_LABELS, ordering="status")
    def status_label(self, obj: SendLog):
        return obj.status, obj.get_status_display()

    @display(description=gettext_lazy("status"))
    @per_object
    def status_badge(self, obj: SendLog) -> str:
        # The list's label, for the read-only detail page (labels apply to list columns only).
        return render_to_string("unfold/helpers/label.html",
                                {"type": STATUS_LABELS.get(obj.status), "text": obj.get_status_display()})

    @display(description=gettext_lazy("created"), ordering="created_at")
    def created(self, obj: SendLog) -> str:
        return format_html('<span class="whitespace-nowrap">{}</span>',
                           formats.date_format(timezone.localtime(obj.created_at), "DATETIME_FORMAT"))

    @display(description=gettext_lazy("SMTP server"), ordering="smtp_server__name")
    def server_name(self, obj: SendLog) -> str:
        return obj.smtp_server.name if obj.smtp_server else "-"

    @display(description=gettext_lazy("to"), ordering="to")
    def recipient(self, obj: SendLog) -> str:
        return truncatechars(obj.to, 60)

    @display(description=gettext_lazy("subject"), ordering="subject")
    def subject_short(self, obj: SendLog) -> str:
        return truncatechars(obj.subject, 70)

    @display(description=gettext_lazy("from"))
    def from_display(self, obj: SendLog) -> str:
        return f"{obj.from_name} <{obj.from_email}>" if obj.from_name else obj.from_email

    @display(description=gettext_lazy("refused recipients"))
    @per_object
    def refused_table(self, obj: SendLog) -> str:
        refused = obj.refused_recipients or {}
        if not refused:
            return "-"
        rows = ((addr, *(list(reply) + ["", ""])[:2]) for addr, reply in refused.items())
        return format_html('<table class="text-sm">{}</table>', format_html_join(
            "", '<tr><td class="pr-4">{}</td><td class="pr-4">{}</td><td>{}</td></tr>', rows))

    @display(description=gettext_lazy("HTML preview"))
    @per_object
    def preview(self, obj: SendLog) -> str:
        if not obj.html_body:
            return "-"
        url = reverse("admin:hub_sendlog_preview", args=[obj.pk])
        # sandbox="" : no scripts, no same-origin, no forms, no popups, no navigation.
        return format_html(
            '<iframe id="hub-preview" src="{}" sandbox="" referrerpolicy="no-referrer" loading="lazy" '
            'title="{}" class="bg-white border border-base-200 rounded-default w-full" style="height:420px">'
            '</iframe><p class="mt-2 text-sm"><a href="{}" target="_blank" rel="noopener noreferrer">{}</a> · {}</p>',
            url, _("HTML preview"), url, _("Open in a new tab"),
            _("Scripts, forms and remote content (images, fonts, tracking pixels) are blocked."),
        )

    @display(description=gettext_lazy("text body"))
    @per_object
    def text_display(self, obj: SendLog) -> str:
        if obj.text_body:
            text, note = _truncated(obj.text_body, DISPLAY_LIMIT)
            return format_html('<pre class="hub-pre text-sm">{}</pre>{}', text, _note(note))
        # Only the start of a huge HTML body is converted: the conversion is the slow part.
        html, note = _truncated(obj.html_body, DISPLAY_LIMIT)
        text, _unused = _truncated(html_to_text(html), DISPLAY_LIMIT)
        return format_html('<p class="text-subtle text-sm">{}</p><pre class="hub-pre text-sm">{}</pre>{}',
                           _("Not given; generated from the HTML when sent:"), text, _note(note))

    @display(description=gettext_lazy("resends"))
    @per_object
    def resends_display(self, obj: SendLog) -> str:
        links = []
        if obj.resent_from_id:
            links.append((reverse("admin:hub_sendlog_change", args=[obj.resent_from_id]),
                          _("resend of #%(id)s") % {"id": obj.resent_from_id}))
        for pk in obj.resends.order_by("id").values_list("pk", flat=True)[:20]:
            links.append((reverse("admin:hub_sendlog_change", args=[pk]), _("resent as #%(id)s") % {"id": pk}))
        if not links:
            return "-"
        return format_html_join(" · ", '<a class="text-primary-600 dark:text-primary-500" href="{}">{}</a>', links)

    @display(description=gettext_lazy("attachments"))
    @per_object
    def attachments_display(self, obj: SendLog) -> str:
        files = list(obj.attachments.values_list("pk", "filename", "size"))
        links = [(reverse("admin:hub_sendlog_attachment", args=[obj.pk, pk]), name, size) for pk, name, size in files]
        if obj.raw_message is not None:
            links.append((reverse("admin:hub_sendlog_raw", args=[obj.pk]), _("original message (.eml)"),
                          len(obj.raw_message)))
        if not links:
            return "-"
        return format_html_join(
            "", '<div><a class="text-primary-600 dark:text-primary-500" href="{}">{}</a> '
                '<span class="text-subtle">({} B)</span></div>', links)

    @display(description=gettext_lazy("calendar event"))
    @per_object
    def event_display(self, obj: SendLog) -> str:
        if not obj.event:
            return "-"
        e = obj.event
        return format_html("{} · {} → {} · {} · UID {} · {} {}", e.get("method", ""), e.get("start", ""),
                           e.get("end", ""), e.get("summary", ""), e.get("uid", ""), _("sequence"),
                           e.get("sequence", ""))

    @display(description=gettext_lazy("HTML source"))
    @per_object
    def html_source(self, obj: SendLog) -> str:
        html, note = _truncated(obj.html_body, DISPLAY_LIMIT)
        return format_html('<details><summary class="cursor-pointer">{}</summary>'
                           '<pre class="text-xs hub-pre">{}</pre>{}</details>',
                           _("Show %(n)s characters") % {"n": len(obj.html_body)}, html, _note(note))

    # -- the preview and export views

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        extra = [
            path("<path:object_id>/preview/", self.admin_site.admin_view(self.preview_view),
                 name="{}_{}_preview".format(*info)),
            path("export.csv", self.admin_site.admin_view(self.export_view), name="{}_{}_export".format(*info)),
            path("<path:object_id>/attachment/<int:attachment_id>/", self.admin_site.admin_view(self.attachment_view),
                 name="{}_{}_attachment".format(*info)),
            path("<path:object_id>/original.eml", self.admin_site.admin_view(self.raw_view), name="{}_{}_raw".format(*info)),
        ]
        return extra + super().get_urls()

    @xframe_options_sameorigin
    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        row = self._viewable(request, object_id)
        response = HttpResponse(row.html_body, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = PREVIEW_CSP
        response["Referrer-Policy"] = "no-referrer"
        response["Cache-Control"] = "private, no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response

    def _download(self, content: bytes, filename: str) -> HttpResponse:
        # Always a download, never shown in the admin's origin: an HTML or SVG attachment
        # opened inline could run script as the admin.
        response = HttpResponse(content, content_type="application/octet-stream")
        response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = "private, no-store"
        return response

    def _viewable(self, request: HttpRequest, object_id: str) -> SendLog:
        row = self.get_object(request, unquote(object_id))
        if row is None:
            raise Http404
        if not self.has_view_permission(request, row):
            raise PermissionDenied
        return row

    def attachment_view(self, request: HttpRequest, object_id: str, attachment_id: int) -> HttpResponse:
        row = self._viewable(request, object_id)
        attachment = row.attachments.filter(pk=attachment_id).first()
        if attachment is None:
            raise Http404
        return self._download(bytes(attachment.content), attachment.filename)

    def raw_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        row = self._viewable(request, object_id)
        if row.raw_message is None:
            raise Http404
        return self._download(bytes(row.raw_message), f"message-{row.pk}.eml")

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """CSV of every row the list currently shows (its filters and search, taken from the
        query string), streamed. Only a POST exports (it is audited and reads the whole
        selection): a GET, e.g. a link followed or prefetched, shows what would be exported
        and a button."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(_("Invalid filter."))
        what = request.GET.urlencode()
        if request.method == "GET":
            return self.action_page(
                request, None, title=_("Export send logs as CSV"),
                intro=_("Exports every send log that matches these filters (%(what)s) as a CSV file. The export "
                        "is recorded in the audit log.") % {"what": what or _("all")},
                submit_label=_("Export"),
            )
        self.audit_export(request, what)
        return csv_response(changelist.get_queryset(request))

    def audit_export(self, request: HttpRequest, what: str) -> None:
        # Exports leave the hub with personal data: record who took what.
        from django.contrib.contenttypes.models import ContentType

        LogEntry.objects.create(
            user_id=request.user.pk, content_type=ContentType.objects.get_for_model(SendLog),
            object_id="", object_repr=_("CSV export"), action_flag=ADDITION,
            change_message=_("Exported send logs as CSV (%(what)s)") % {"what": what or _("all")},
        )

    # -- actions

    @action(description=gettext_lazy("Export selected as CSV"), permissions=["export"])
    def export_selected_csv(self, request: HttpRequest, queryset) -> HttpResponse:
        self.audit_export(request, _("selected rows"))
        return csv_response(queryset)

    def _resend(self, request: HttpRequest, row: SendLog) -> SendLog | None:
        if not row.app.enabled:
            messages.error(request, _("#%(id)s not resent: its app is disabled.") % {"id": row.pk})
            return None
        try:
            copy = resend(row)
        except Refusal as refusal:
            messages.error(request, _("#%(id)s not resent: %(msg)s (%(error)s) %(detail)s") % {
                "id": row.pk, "msg": refusal.msg, "error": refusal.error, "detail": refusal.detail})
            return None
        forget_cached()  # the dashboard counts it on the next view
        # Linked both ways: SendLog.resent_from, and each one's audit trail.
        self.audit(request, row, _("Resent as #%(id)s") % {"id": copy.pk})
        LogEntry.objects.log_actions(user_id=request.user.pk, queryset=[copy], action_flag=ADDITION,
                                     change_message=_("Resend of #%(id)s") % {"id": row.pk}, single_object=True)
        return copy

    @action(description=gettext_lazy("Resend selected"), permissions=["resend"])
    def resend_selected(self, request: HttpRequest, queryset) -> None:
        rows = list(queryset.select_related("app")[: MAX_BULK_RESEND + 1])
        if len(rows) > MAX_BULK_RESEND:
            messages.error(request, _("Select at most %(n)d messages to resend at once.") % {"n": MAX_BULK_RESEND})
            return
        copies = [c for c in (self._resend(request, row) for row in rows) if c]
        if copies:
            messages.success(request, _("%(n)d message(s) queued again: %(ids)s") % {
                "n": len(copies), "ids": ", ".join(f"#{c.pk}" for c in copies)})

    @action(description=gettext_lazy("Resend"), url_path="resend", permissions=["resend"], icon="forward_to_inbox",
            variant=ActionVariant.PRIMARY)
    def resend_one(self, request: HttpRequest, object_id: str) -> HttpResponse:
        row = self.get_object(request, unquote(object_id))
        if row is None:
            raise Http404
        if request.method == "POST":
            copy = self._resend(request, row)
            if copy is not None:
                messages.success(request, _("Queued again as #%(id)s.") % {"id": copy.pk})
                return HttpResponseRedirect(reverse("admin:hub_sendlog_change", args=[copy.pk]))
            return HttpResponseRedirect(reverse("admin:hub_sendlog_change", args=[row.pk]))
        return self.action_page(
            request, row, title=_("Resend #%(id)s") % {"id": row.pk},
            intro=_("Queues a new message with the same app, recipients, subject and content. The original stays "
                    "as it is; both are linked in their audit trails."),
            submit_label=_("Resend"),
        )
