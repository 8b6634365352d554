"""Webhooks in the back office: endpoints (URL, events, secret set or generated, enabled),
the events with their delivery status, attempts and last answer (resend action), and the
log of every POST."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.contrib.filters.admin import RelatedDropdownFilter
from unfold.decorators import action, display

from hub import crypto
from hub.admin.common import HubModelAdmin, WindowPaginationMixin

from . import outbox, signing, subscriptions
from .models import KIND_CHOICES, Attempt, Endpoint, Event
from .targets import TargetError, parse_kinds, validate_url


class EndpointForm(forms.ModelForm):
    event_kinds = forms.MultipleChoiceField(label=gettext_lazy("events"), choices=KIND_CHOICES,
                                            widget=forms.CheckboxSelectMultiple)
    new_secret = forms.CharField(
        label=gettext_lazy("new secret"), required=False, max_length=signing.SECRET_MAX,
        help_text=gettext_lazy("Leave empty to keep the secret (a new endpoint gets a generated one)."))

    class Meta:
        model = Endpoint
        fields = ("account", "url", "description", "enabled")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["event_kinds"] = self.instance.kind_list

    def clean_url(self) -> str:
        try:
            return validate_url(self.cleaned_data.get("url", ""))
        except TargetError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_event_kinds(self) -> str:
        try:
            return parse_kinds(self.cleaned_data.get("event_kinds") or [])
        except TargetError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_new_secret(self) -> str:
        secret = self.cleaned_data.get("new_secret", "")
        if secret and not (signing.SECRET_MIN <= len(secret) and secret.isascii() and secret.isprintable()):
            raise forms.ValidationError(_("the secret must be %(min)s to %(max)s printable ASCII characters")
                                        % {"min": signing.SECRET_MIN, "max": signing.SECRET_MAX})
        return secret


@admin.register(Endpoint)
class EndpointAdmin(HubModelAdmin):
    form = EndpointForm
    list_display = ("url", "account", "kinds", "enabled", "health", "last_success_at", "last_failure_at")
    list_filter = ("enabled", ("account", RelatedDropdownFilter))
    list_filter_submit = True
    list_select_related = ("account",)
    search_fields = ("url", "description")
    readonly_fields = ("secret", "failures", "retry_at", "last_success_at", "last_failure_at", "created_at",
                       "updated_at")
    actions = ("enable_now",)

    def get_fields(self, request: HttpRequest, obj: Endpoint | None = None):
        editable = ("account", "url", "description", "event_kinds", "enabled", "new_secret")
        return editable if obj is None else (*editable, *self.readonly_fields)

    @display(description=gettext_lazy("health"), label={"ok": "success", "failing": "danger", "off": "warning"})
    def health(self, obj: Endpoint):
        if not obj.enabled:
            return "off", _("disabled")
        if obj.failures:
            return "failing", _("%(n)s failures") % {"n": obj.failures}
        return "ok", _("ok")

    @display(description=gettext_lazy("secret"))
    def secret(self, obj: Endpoint | None) -> str:
        # Operators are trusted with it (they could read the encrypted column and the key);
        # the API shows it only on creation and rotation.
        if obj is None or not obj.pk:
            return "-"
        try:
            return format_html("<code>{}</code>", obj.get_secret())
        except crypto.DecryptionError as exc:
            return str(exc)

    def save_model(self, request: HttpRequest, obj: Endpoint, form, change: bool) -> None:
        obj.kinds = form.cleaned_data["event_kinds"]
        secret = form.cleaned_data.get("new_secret") or ("" if change else signing.new_secret())
        if secret:
            obj.set_secret(secret)
        if change and "enabled" in form.changed_data and obj.enabled:
            obj.retry_at, obj.failures = None, 0
        obj.save()

    @action(description=gettext_lazy("Enable and retry now"), permissions=["change"])
    def enable_now(self, request: HttpRequest, queryset) -> None:
        count = queryset.update(enabled=True, retry_at=None, failures=0)
        subscriptions.invalidate()  # update() sends no post_save
        outbox.wake()
        messages.success(request, _("%(n)s endpoints enabled.") % {"n": count})


@admin.register(Event)
class EventAdmin(WindowPaginationMixin, HubModelAdmin):
    list_display = ("id", "kind", "email", "endpoint", "status_badge", "attempts", "response_code", "occurred_at",
                    "next_attempt_at", "delivered_at")
    list_filter = ("status", "kind", ("endpoint", RelatedDropdownFilter))
    list_filter_submit = True
    list_select_related = ("endpoint", "last_attempt")
    search_fields = ("=email",)
    list_per_page = 50
    actions = ("resend",)
    readonly_fields = ("endpoint", "account", "kind", "email", "occurred_at", "app_id", "log_id", "campaign_id",
                       "contact_id", "data", "status", "attempts", "next_attempt_at", "delivered_at", "created_at",
                       "last_attempt_detail")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # read-only; the resend action needs "change" on the model, see below

    @display(description=gettext_lazy("status"), label={"delivered": "success", "failed": "danger",
                                                       "pending": "warning", "sending": "info"})
    def status_badge(self, obj: Event):
        return obj.status, obj.get_status_display()

    @display(description=gettext_lazy("HTTP status"))
    def response_code(self, obj: Event):
        attempt = obj.last_attempt
        if attempt is None:
            return "-"
        return attempt.status_code or (attempt.error[:40] or "-")

    @display(description=gettext_lazy("last attempt"))
    def last_attempt_detail(self, obj: Event):
        a = obj.last_attempt
        if a is None:
            return "-"
        return format_html("{} · HTTP {} · {} ms<br>{}<pre style='white-space:pre-wrap'>{}</pre>",
                           a.started_at, a.status_code or "-", a.duration_ms, a.error, a.response)

    @action(description=gettext_lazy("Resend"), permissions=["resend"])
    def resend(self, request: HttpRequest, queryset) -> None:
        ids = list(queryset.values_list("id", flat=True)[:5000])
        count = outbox.resend(Event.objects.filter(pk__in=ids))
        messages.success(request, _("%(n)s events queued again.") % {"n": count})

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.change_event")


@admin.register(Attempt)
class AttemptAdmin(WindowPaginationMixin, HubModelAdmin):
    list_display = ("started_at", "endpoint", "event_count", "ok", "status_code", "duration_ms", "short_error")
    list_filter = ("ok", ("endpoint", RelatedDropdownFilter))
    list_filter_submit = True
    list_select_related = ("endpoint",)
    list_per_page = 50
    readonly_fields = ("endpoint", "account", "delivery_id", "started_at", "duration_ms", "event_count", "ok",
                       "status_code", "response", "error")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @display(description=gettext_lazy("error"))
    def short_error(self, obj: Attempt) -> str:
        return obj.error[:80]
