"""Bounces and complaints in the back office: the reports received (read-only, filterable)
and the IMAP bounce mailboxes (password write-only, "poll now")."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.contrib.filters.admin import RelatedDropdownFilter
from unfold.decorators import action
from unfold.widgets import UnfoldAdminPasswordWidget

from hub.admin.common import HubModelAdmin, LocalDateRangeFilter

from . import imap
from .models import BounceMailbox, Report


@admin.register(Report)
class ReportAdmin(HubModelAdmin):
    list_display = ("received_at", "kind", "email", "account", "failure_type", "hard", "status", "feedback_type",
                    "matched_by", "log_id", "source")
    list_filter = ("kind", "source", "hard", "failure_type", ("account", RelatedDropdownFilter),
                   ("received_at", LocalDateRangeFilter))
    list_filter_submit = True
    list_select_related = ("account",)
    search_fields = ("email",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class BounceMailboxForm(forms.ModelForm):
    password = forms.CharField(label=gettext_lazy("Password"), required=False, strip=False,
                               widget=UnfoldAdminPasswordWidget(render_value=False),
                               help_text=gettext_lazy("Leave blank to keep the stored password."))

    class Meta:
        model = BounceMailbox
        fields = ("account", "name", "host", "port", "security", "verify_tls", "username", "password", "folder",
                  "enabled")

    def save(self, commit: bool = True):
        if self.cleaned_data.get("password"):
            self.instance.set_password(self.cleaned_data["password"])
        return super().save(commit)


@admin.register(BounceMailbox)
class BounceMailboxAdmin(HubModelAdmin):
    form = BounceMailboxForm
    list_display = ("name", "account", "username", "host", "enabled", "last_polled_at", "last_error")
    list_filter = ("enabled", ("account", RelatedDropdownFilter))
    list_select_related = ("account",)
    readonly_fields = ("last_polled_at", "last_error")
    actions = ("poll_now",)

    @action(description=gettext_lazy("Poll now"))
    def poll_now(self, request: HttpRequest, queryset) -> None:
        for mailbox in queryset:
            try:
                count = imap.poll(mailbox)
            except imap.PollError as exc:
                self.message_user(request, _("%(name)s: polling failed: %(error)s") % {"name": mailbox, "error": exc}, messages.ERROR)
                continue
            self.message_user(request, _("%(name)s: %(count)d message(s) processed") % {"name": mailbox,
                                                                                        "count": count})
