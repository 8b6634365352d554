"""Sending domains in the back office: domains with their DNS status and the records to
publish (check now, rotate keys), DKIM keys (public halves only: a private key is never
shown, not even encrypted), and mailboxes (password set through the form, stored hashed)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.contrib.filters.admin import RelatedDropdownFilter
from unfold.decorators import action, display

from hub.admin.common import HubModelAdmin

from . import mailboxes, services
from .models import DkimKey, Domain, Mailbox


class DomainForm(forms.ModelForm):
    class Meta:
        model = Domain
        fields = ("account", "name")

    def clean_name(self) -> str:
        try:
            name = services.normalize_domain(self.cleaned_data.get("name", ""))
        except services.DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        if Domain.objects.filter(name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(_("this domain is already registered"))
        return name


@admin.register(Domain)
class DomainAdmin(HubModelAdmin):
    form = DomainForm
    list_display = ("name", "account", "status_badge", "spf_ok", "mx_ok", "dkim_ok", "checked_at", "broken_since")
    list_filter = ("status", ("account", RelatedDropdownFilter), "spf_ok", "mx_ok", "dkim_ok")
    list_filter_submit = True
    list_select_related = ("account",)
    search_fields = ("name",)
    ordering = ("name",)
    readonly_fields = ("status", "spf_ok", "mx_ok", "dkim_ok", "check_detail", "checked_at", "verified_at",
                       "broken_since", "created_at", "dns_records")
    actions = ("check_now", "rotate_keys", "activate_next_keys")

    def get_fields(self, request: HttpRequest, obj: Domain | None = None):
        if obj is None:
            return ("account", "name")
        return ("account", "name", *self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Domain | None = None):
        # The name is what DNS proved and what mailboxes hang on: never renamed.
        return (*self.readonly_fields, "account", "name") if obj else ()

    @display(description=gettext_lazy("status"), label={"verified": "success", "broken": "danger",
                                                       "pending": "warning"})
    def status_badge(self, obj: Domain):
        return obj.status, obj.get_status_display()

    @display(description=gettext_lazy("records to publish"))
    def dns_records(self, obj: Domain | None):
        if obj is None or obj.pk is None:
            return "-"
        mark = {True: "✔", False: "✘", None: "·"}
        rows = format_html_join(
            "", "<tr><td>{}</td><td><code>{}</code></td><td><code style='word-break:break-all'>{}</code></td>"
                "<td>{}</td><td>{}</td></tr>",
            ((r.type, r.name, r.value, mark[r.ok], r.note) for r in services.records(obj)))
        return format_html("<table class='w-full'><tr><th>{}</th><th>{}</th><th>{}</th><th></th><th></th></tr>{}"
                           "</table>", _("type"), _("name"), _("value"), rows)

    def save_model(self, request: HttpRequest, obj: Domain, form, change: bool) -> None:
        if change:
            return  # nothing editable after creation
        with transaction.atomic():
            obj.save()
            services.make_first_keys(obj)
        services.run_check(obj)

    @action(description=gettext_lazy("Check DNS now"), permissions=["change"])
    def check_now(self, request: HttpRequest, queryset) -> None:
        for domain in queryset[:50]:
            domain = services.run_check(domain)
            messages.info(request, f"{domain.name}: {domain.get_status_display()}")

    @action(description=gettext_lazy("Start DKIM key rotation"), permissions=["change"])
    def rotate_keys(self, request: HttpRequest, queryset) -> None:
        for domain in queryset[:50]:
            try:
                services.start_rotation(domain)
                self.audit(request, domain, "DKIM rotation started")
                messages.success(request, _("%(domain)s: publish the next key's records, then activate it.")
                                 % {"domain": domain.name})
            except services.DomainError as exc:
                messages.error(request, f"{domain.name}: {exc.message}")

    @action(description=gettext_lazy("Activate the next DKIM key"), permissions=["change"])
    def activate_next_keys(self, request: HttpRequest, queryset) -> None:
        for domain in queryset[:50]:
            try:
                services.activate_next(domain)
                self.audit(request, domain, "DKIM next key activated")
                messages.success(request, _("%(domain)s: signing with the new key.") % {"domain": domain.name})
            except services.DomainError as exc:
                messages.error(request, f"{domain.name}: {exc.message}")


@admin.register(DkimKey)
class DkimKeyAdmin(HubModelAdmin):
    list_display = ("selector", "domain", "algorithm", "state", "created_at", "activated_at", "retired_at")
    list_filter = ("state", "algorithm")
    list_select_related = ("domain",)
    search_fields = ("domain__name", "selector")
    # The private key is not among the fields: it is never shown, encrypted or not.
    fields = ("domain", "selector", "algorithm", "state", "dns_name_display", "record_display", "created_at",
              "activated_at", "retired_at")
    readonly_fields = fields

    @display(description=gettext_lazy("DNS name"))
    def dns_name_display(self, obj: DkimKey) -> str:
        return obj.dns_name

    @display(description=gettext_lazy("TXT record"))
    def record_display(self, obj: DkimKey) -> str:
        return format_html("<code style='word-break:break-all'>{}</code>", obj.record)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are made by the hub (domain added, rotation)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class MailboxForm(forms.ModelForm):
    password = forms.CharField(label=gettext_lazy("password"), required=False, strip=False,
                               widget=forms.PasswordInput(render_value=False),
                               help_text=gettext_lazy("Stored as a hash. Leave empty to keep the current one."))

    class Meta:
        model = Mailbox
        fields = ("domain", "local_part", "app", "enabled")

    def clean(self):
        data = super().clean()
        domain, app = data.get("domain"), data.get("app")
        if self.instance.pk is None:
            if not data.get("password"):
                self.add_error("password", _("a new mailbox needs a password"))
            if domain is not None:
                if not domain.is_verified:
                    self.add_error("domain", _("the domain is not verified yet"))
                try:
                    local, _d = mailboxes.normalize_mailbox(f"{data.get('local_part', '')}@{domain.name}")
                    data["local_part"] = local
                    if Mailbox.objects.filter(address=f"{local}@{domain.name}").exists():
                        self.add_error("local_part", _("this mailbox already exists"))
                except services.DomainError as exc:
                    self.add_error("local_part", exc.message)
        if data.get("password"):
            try:
                mailboxes.check_new_password(data["password"])
            except services.DomainError as exc:
                self.add_error("password", exc.message)
        if domain is not None and app is not None and app.account_id != domain.account_id:
            self.add_error("app", _("the app must belong to the domain's account"))
        return data


@admin.register(Mailbox)
class MailboxAdmin(HubModelAdmin):
    form = MailboxForm
    list_display = ("address", "domain", "app", "enabled", "created_at")
    list_filter = ("enabled",)
    list_select_related = ("domain", "app")
    search_fields = ("address",)
    ordering = ("address",)

    def get_fields(self, request: HttpRequest, obj: Mailbox | None = None):
        return ("domain", "local_part", "password", "app", "enabled") if obj is None else (
            "address", "password", "app", "enabled", "created_at", "password_changed_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Mailbox | None = None):
        return ("address", "created_at", "password_changed_at") if obj else ()

    def save_model(self, request: HttpRequest, obj: Mailbox, form, change: bool) -> None:
        if not change:
            obj.address = f"{obj.local_part}@{obj.domain.name}"
        if form.cleaned_data.get("password"):
            obj.set_password(form.cleaned_data["password"])
        obj.save()
