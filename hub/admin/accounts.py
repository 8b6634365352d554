"""Accounts (tenants) in the back office: company and contact details, manager and
sub-accounts, service period and quota, the account's apps, and the quota's audit trail.

The quota fields are read-only on the form: the quota changes only through the "Top up
quota" action (hub.quota.top_up: F expressions, so a top-up never overwrites what sends
took meanwhile), which writes a QuotaChange row and a LogEntry. A plain form save of the
quota would race with the send path and leave no trail."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.widgets import UnfoldAdminIntegerFieldWidget, UnfoldAdminTextInputWidget

from .. import quota
from ..models import Account, QuotaChange
from .common import HubModelAdmin

MAX_TOP_UP = 10**12  # a typo guard: more than any customer buys at once


class TopUpForm(forms.Form):
    amount = forms.IntegerField(label=gettext_lazy("Amount"), min_value=1, max_value=MAX_TOP_UP,
                                widget=UnfoldAdminIntegerFieldWidget,
                                help_text=gettext_lazy("Added to the quota bought and to the quota available."))
    note = forms.CharField(label=gettext_lazy("Note"), required=False, max_length=500,
                           widget=UnfoldAdminTextInputWidget,
                           help_text=gettext_lazy("Optional: an order number, an invoice, a reason."))


@admin.register(Account)
class AccountAdmin(HubModelAdmin):
    list_display = ("name", "company", "contact", "enabled", "service_status", "service_period", "quota_type",
                    "quota_available", "quota_total", "app_count")
    list_display_links = ("name", "company")
    list_filter = ("enabled", "service_status", "quota_type", "is_manager")
    search_fields = ("name", "company", "contact", "email", "phone", "mobile")
    ordering = ("id",)
    actions_detail = ("top_up_quota",)
    autocomplete_fields = ("parent",)
    fieldsets = (
        (None, {"fields": ("name", "company", "enabled")}),
        (gettext_lazy("Contact"), {"fields": ("contact", "phone", "mobile", "email", "im", "address")}),
        (gettext_lazy("Manager and sub-accounts"), {"fields": ("is_manager", "parent", "sub_accounts")}),
        (gettext_lazy("Service"), {"fields": ("service_status", "service_start", "service_end", "send_type")}),
        (gettext_lazy("Quota"), {
            "description": gettext_lazy("Changed only by the “Top up quota” action, which keeps an audit trail."),
            "fields": ("quota_type", "quota_total", "quota_available", "quota_day", "recent_quota_changes")}),
        (gettext_lazy("Apps"), {"fields": ("app_links",)}),
        (gettext_lazy("Audit"), {"fields": ("created_at", "updated_at", "audit_trail")}),
    )
    readonly_fields = ("quota_total", "quota_available", "quota_day", "recent_quota_changes", "app_links",
                       "sub_accounts", "created_at", "updated_at", "audit_trail")

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(n_apps=Count("apps"))

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None):
        fields = list(self.readonly_fields)
        if obj is not None and obj.quota_type != Account.QuotaType.UNLIMITED:
            # Metered: switching the type would re-read the counters in another sense
            # (total vs today's allowance); an admin does that knowingly, by a command.
            fields.append("quota_type")
        return fields

    def get_fieldsets(self, request: HttpRequest, obj: Account | None = None):
        if obj is None:  # the add form: no apps, no trail yet
            return [fs for fs in self.fieldsets if fs[0] not in (gettext_lazy("Apps"), gettext_lazy("Audit"))]
        return self.fieldsets

    # -- columns and read-only fields

    @display(description=gettext_lazy("Service period"))
    def service_period(self, obj: Account) -> str:
        if not obj.service_start and not obj.service_end:
            return "-"
        start = obj.service_start.isoformat() if obj.service_start else "…"
        end = obj.service_end.isoformat() if obj.service_end else "…"
        return f"{start} – {end}"

    @display(description=gettext_lazy("Apps"), ordering="n_apps")
    def app_count(self, obj: Account) -> int:
        return getattr(obj, "n_apps", 0)

    @display(description=gettext_lazy("Apps of this account"))
    def app_links(self, obj: Account) -> str:
        apps = list(obj.apps.order_by("id")[:100]) if obj.pk else []
        if not apps:
            return _("No apps.")
        return format_html_join(
            ", ", '<a class="text-primary-600 dark:text-primary-500" href="{}">{}</a>{}',
            ((reverse("admin:hub_app_change", args=[app.pk]), str(app), "" if app.enabled else f" ({_('disabled')})")
             for app in apps))

    @display(description=gettext_lazy("Sub-accounts"))
    def sub_accounts(self, obj: Account) -> str:
        children = list(obj.children.order_by("id")[:100]) if obj.pk else []
        if not children:
            return "-"
        return format_html_join(", ", '<a class="text-primary-600 dark:text-primary-500" href="{}">{}</a>',
                                ((reverse("admin:hub_account_change", args=[c.pk]), c.name) for c in children))

    @display(description=gettext_lazy("Recent quota changes"))
    def recent_quota_changes(self, obj: Account) -> str:
        changes = list(obj.quota_changes.select_related("user")[:10]) if obj.pk else []
        if not changes:
            return _("No quota changes yet.")
        rows = format_html_join(
            "",
            '<tr><td class="pr-4 py-1 whitespace-nowrap">{}</td><td class="pr-4 py-1">{}</td>'
            '<td class="pr-4 py-1">{:+d}</td><td class="pr-4 py-1">{}</td><td class="py-1">{}</td></tr>',
            ((formats.date_format(timezone.localtime(c.created_at), "DATETIME_FORMAT"),
              c.user.get_username() if c.user_id else "-", c.delta,
              _("available after: %(n)s") % {"n": c.quota_available_after}, c.note or c.get_reason_display())
             for c in changes))
        return format_html('<table class="text-sm">{}</table>', rows)

    # -- the top-up action

    @action(description=gettext_lazy("Top up quota"), url_path="top-up", permissions=["change"],
            icon="add_card", variant=ActionVariant.PRIMARY)
    def top_up_quota(self, request: HttpRequest, object_id: str) -> HttpResponse:
        account = self.get_object(request, unquote(object_id))
        if account is None:
            raise Http404(_("No such account."))
        form = TopUpForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            amount, note = form.cleaned_data["amount"], form.cleaned_data["note"]
            account, _change = quota.top_up(account.pk, amount, note=note, user=request.user)
            text = _("Topped up the quota by %(amount)s (available now %(available)s)") % {
                "amount": amount, "available": account.quota_available}
            self.audit(request, account, f"{text}: {note}" if note else text)
            messages.success(request, text)
            return HttpResponseRedirect(reverse("admin:hub_account_change", args=[account.pk]))
        intro = _("Adds the amount to the quota bought and the quota available of %(account)s, at once and "
                  "without touching what sends take meanwhile. Quota type: %(type)s; available now: %(available)s.") % {
            "account": account, "type": account.get_quota_type_display(), "available": account.quota_available}
        if account.quota_type == Account.QuotaType.DAILY:
            intro += " " + _("For a daily quota, the quota bought is the daily allowance.")
        elif account.quota_type == Account.QuotaType.UNLIMITED:
            intro += " " + _("This account is unlimited: the quota is not counted until its type changes.")
        return self.action_page(request, account, title=_("Top up quota: %(account)s") % {"account": account},
                                intro=intro, form=form, submit_label=_("Top up"))


@admin.register(QuotaChange)
class QuotaChangeAdmin(HubModelAdmin):
    """The quota's audit trail, read-only: rows are written by the top-up action only."""

    list_display = ("created_at", "account", "delta", "quota_available_after", "reason", "user", "note")
    list_filter = ("reason",)
    search_fields = ("account__name", "note")
    list_select_related = ("account", "user")
    ordering = ("-created_at", "-id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
