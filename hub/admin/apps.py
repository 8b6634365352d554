"""Apps (AppID/AppSecret) in the back office. The secret is shown once, in the body of the
response to the POST that made it (on create and on rotation), on a page that is not
cached; never in a message (Django's messages cookie is signed, not encrypted) nor in a
redirect target. Only its digest is stored.
"Send test email" runs the normal pipeline: hub.sending.accept() writes the SendLog and
queues it, then the message is delivered at once in this request, as the API's sync mode
does, so the admin sees the outcome and the message is in the send logs."""

from __future__ import annotations

import inspect

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.admin import TabularInline
from unfold.decorators import action, display
from unfold.enums import ActionVariant

from ..delivery.outbox import deliver_batch
from ..models import App, AppServer, SendLog
from ..sending import Refusal, SendRequest, accept
from .common import HubModelAdmin
from .dashboard import forget_cached
from .forms import RotateSecretForm, TestEmailForm
from .logs import mark_admin_made

# EXTENSION POINT (reliability): rotation with a grace period, when the model supports it.
ROTATION_HAS_GRACE = "grace_seconds" in inspect.signature(App.rotate_secret).parameters


class AppServerInline(TabularInline):
    """The app's SMTP servers; drag to reorder. The first is the primary, the rest are
    tried in order when it fails."""

    model = AppServer
    fields = ("server", "priority")
    ordering_field = "priority"
    extra = 0
    min_num = 0
    verbose_name = gettext_lazy("SMTP server")
    verbose_name_plural = gettext_lazy("SMTP servers (first is primary; drag to reorder)")


@admin.register(App)
class AppAdmin(HubModelAdmin):
    list_display = ("appid_display", "name", "type", "enabled", "server_list", "created_at")
    list_display_links = ("appid_display", "name")
    list_filter = ("enabled", "type")
    search_fields = ("name", "from_name")
    ordering = ("id",)
    inlines = (AppServerInline,)
    autocomplete_fields = ("account",)
    actions = ("enable_selected", "disable_selected")
    actions_detail = ("rotate_secret", "send_test_email")
    change_form_after_template = "admin/hub/app/integration.html"

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "allowed_ips" and field is not None:
            field.widget.attrs["rows"] = 3
        return field

    def get_queryset(self, request: HttpRequest):
        links = AppServer.objects.select_related("server").order_by("priority", "id")
        return super().get_queryset(request).prefetch_related(Prefetch("server_links", queryset=links))

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        queryset, duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term.isdigit() and len(term) < 19:  # an AppID
            queryset |= self.model.objects.filter(pk=int(term))
        return queryset, duplicates

    def get_fieldsets(self, request: HttpRequest, obj: App | None = None):
        fieldsets = [
            (None, {"fields": ["name", "account", "type", "from_name", "enabled"]}),
            (gettext_lazy("API access"), {"fields": ["allowed_ips", "rate_limit_per_minute"]}),
        ]
        if obj is not None:
            secret = ["appid_display", "secret_status"]
            fieldsets.insert(0, (gettext_lazy("Credentials"), {"fields": secret}))
            fieldsets.append((gettext_lazy("Audit"), {"fields": ["created_at", "updated_at", "audit_trail"]}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: App | None = None):
        return ("appid_display", "secret_status", "created_at", "updated_at", "audit_trail")

    # -- columns and read-only fields

    @display(description=gettext_lazy("AppID"), ordering="id")
    def appid_display(self, obj: App) -> str:
        return format_html('<code class="hub-mono">{}</code>', obj.pk)

    @display(description=gettext_lazy("SMTP servers (primary first)"))
    def server_list(self, obj: App) -> str:
        links = list(obj.server_links.all())  # prefetched, in priority order
        if not links:
            return format_html('<span class="text-red-600">{}</span>', _("none: sends are refused"))
        return format_html_join(
            " → ", '<span class="{}">{}</span>',
            (("" if link.server.enabled else "hub-strike text-subtle", link.server.name) for link in links),
        )

    @display(description=gettext_lazy("AppSecret"))
    def secret_status(self, obj: App) -> str:
        text = _("Stored as a one-way digest; it cannot be shown again. Use “Rotate secret” to issue a new one.")
        expires = getattr(obj, "previous_secret_expires_at", None)
        if expires and expires > timezone.now():
            when = formats.date_format(timezone.localtime(expires), "DATETIME_FORMAT")
            text += " " + _("The previous secret still works until %(when)s.") % {"when": when}
        return text

    # -- create: the secret is made here and shown once

    def save_model(self, request: HttpRequest, obj: App, form, change: bool) -> None:
        if not change:
            request._hub_new_secret = obj.rotate_secret()
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: App, post_url_continue=None) -> HttpResponse:
        response = super().response_add(request, obj, post_url_continue)
        secret = getattr(request, "_hub_new_secret", None)
        if not secret:
            return response
        # The page the admin would have redirected to is where "Continue" leads.
        next_url = response.url if isinstance(response, HttpResponseRedirect) else (
            reverse("admin:hub_app_change", args=[obj.pk]))
        return self.secret_page(request, obj, secret, rotated=False, next_url=next_url)

    def secret_page(self, request: HttpRequest, app: App, secret: str, *, rotated: bool,
                    next_url: str) -> HttpResponse:
        """The new AppSecret, once, in this response's body. no-store: no browser or proxy
        keeps a copy; the page replaces its history entry by `next_url`, so going back or
        reloading does not post the form again (a second app, another rotation)."""
        title = (_("New AppSecret for AppID %(appid)s") if rotated else _("App created. AppID %(appid)s")) % {
            "appid": app.pk}
        response = self.action_page(
            request, app, title=title, template="admin/hub/app/secret.html", secret=secret, next_url=next_url,
            intro=_("Copy it now: it is shown only this once and cannot be recovered (rotate it to get a new "
                    "one)."),
        )
        response["Cache-Control"] = "no-store, private"
        response["Pragma"] = "no-cache"
        return response

    # -- bulk enable / disable

    def _set_enabled(self, request: HttpRequest, queryset, enabled: bool) -> None:
        changed = 0
        for app in queryset:
            if app.enabled != enabled:
                app.enabled = enabled
                app.save(update_fields=["enabled", "updated_at"])
                self.audit(request, app, _("Enabled") if enabled else _("Disabled"))
                changed += 1
        messages.success(request, _("%(n)d app(s) updated.") % {"n": changed})

    @action(description=gettext_lazy("Enable selected apps"), permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset) -> None:
        self._set_enabled(request, queryset, True)

    @action(description=gettext_lazy("Disable selected apps"), permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset) -> None:
        self._set_enabled(request, queryset, False)

    # -- detail actions

    def _app(self, request: HttpRequest, object_id: str) -> App:
        app = self.get_object(request, unquote(object_id))
        if app is None:
            raise Http404(_("No such app."))
        return app

    @action(description=gettext_lazy("Rotate secret"), url_path="rotate-secret", permissions=["change"],
            icon="key", variant=ActionVariant.WARNING)
    def rotate_secret(self, request: HttpRequest, object_id: str) -> HttpResponse:
        app = self._app(request, object_id)
        form = RotateSecretForm(request.POST or None, with_grace=ROTATION_HAS_GRACE)
        if request.method == "POST" and form.is_valid():
            grace = form.cleaned_data.get("grace_seconds", 0)
            secret = app.rotate_secret(grace_seconds=grace) if ROTATION_HAS_GRACE else app.rotate_secret()
            app.save()
            note = _("Rotated the AppSecret")
            expires = getattr(app, "previous_secret_expires_at", None)
            if grace and expires:
                note += " " + _("(the old one works until %(when)s)") % {
                    "when": formats.date_format(timezone.localtime(expires), "DATETIME_FORMAT")}
            self.audit(request, app, note)
            return self.secret_page(request, app, secret, rotated=True,
                                    next_url=reverse("admin:hub_app_change", args=[app.pk]))
        intro = _("Issues a new AppSecret for AppID %(appid)s. Every client using the current secret must be "
                  "updated.") % {"appid": app.pk}
        if not ROTATION_HAS_GRACE:
            intro += " " + _("The current secret stops working at once.")
        return self.action_page(request, app, title=_("Rotate secret: %(app)s") % {"app": app}, intro=intro,
                                form=form, submit_label=_("Rotate the secret"))

    @action(description=gettext_lazy("Send test email"), url_path="send-test", permissions=["change"], icon="send",
            variant=ActionVariant.PRIMARY)
    def send_test_email(self, request: HttpRequest, object_id: str) -> HttpResponse:
        app = self._app(request, object_id)
        form = TestEmailForm(request.POST or None)
        row = None
        if request.method == "POST" and form.is_valid():
            row = self._send_test(request, app, form.cleaned_data)
        return self.action_page(
            request, app, title=_("Send test email: %(app)s") % {"app": app},
            intro=_("Sends a message as this app through the normal pipeline (accepted, logged, delivered by the "
                    "app's SMTP servers in priority order) and shows the result. It appears in the send logs."),
            form=form, submit_label=_("Send"), log_row=row,
        )

    def _send_test(self, request: HttpRequest, app: App, data: dict) -> SendLog | None:
        if not app.enabled:
            messages.error(request, _("This app is disabled: the API refuses its sends. Enable it first."))
            return None
        req = SendRequest(to=data["to"], subject=data["subject"], message=data["message"])
        try:
            with transaction.atomic():
                row = accept(app, req, client_ip=None)
                mark_admin_made(row)
        except Refusal as refusal:
            messages.error(request, _("Refused: %(msg)s (%(error)s) %(detail)s") % {
                "msg": refusal.msg, "error": refusal.error, "detail": refusal.detail})
            return None
        forget_cached()  # the dashboard counts it on the next view
        # Deliver now, in this request (a drain that comes later finds the row taken).
        deliver_batch([row.id])
        row.refresh_from_db()
        note = _("Test email #%(id)s to %(to)s: %(status)s") % {
            "id": row.pk, "to": row.to, "status": row.get_status_display()}
        if row.status == SendLog.Status.SENT:
            messages.success(request, note)
        elif row.status == SendLog.Status.FAILED:
            messages.error(request, f"{note}: {row.error}")
        else:
            messages.warning(request, f"{note}: {row.error}" if row.error else note)
        self.audit(request, app, note)
        return row
