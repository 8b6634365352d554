"""Contacts in the back office: lists (counts, import flag, exports, an import page), contacts
(search and filters that stay fast at millions: no COUNT(*), an exact address uses the
unique index), and imports (read-only, with a progress page that refreshes until the job
ends). Writes keep the list counters exact, as hub.contacts.services does."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from urllib.parse import quote

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.contrib.filters.admin import RelatedDropdownFilter
from unfold.decorators import action, display
from unfold.enums import ActionVariant

from hub.admin.common import HubModelAdmin, WindowPaginationMixin

from . import admin_imports, services, store  # noqa: F401  (admin_imports registers the import pages)
from .models import Contact, MailList
from .normalize import Invalid, normalize_email

EXPORT_COLUMNS = ("email", "fullname", "sex", "birthday", "phone", "area", *(f"var{i}" for i in range(1, 11)),
                  "subscribed", "unsubscribed_at", "created_at")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):  # CSV injection: no formulas in spreadsheets
        text = "'" + text
    return text


def contacts_csv(mail_list: MailList) -> Iterator[str]:
    """The list as CSV (UTF-8 with BOM for spreadsheets), read in keyset chunks."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(EXPORT_COLUMNS)
    last: int | None = 0
    while True:
        rows, last = store.page_after(mail_list.pk, last, 2000, *EXPORT_COLUMNS)
        if last is None:
            return
        for row in rows:
            yield writer.writerow([_cell(v) for v in row])


def unsubscribed_lines(mail_list: MailList) -> Iterator[str]:
    """V28 4.6: `YYYY-MM-DD HH:MM:SS<TAB>email` per line, in the hub's time zone."""
    for contact in services.unsubscribed_contacts(mail_list.account, mail_list.pk):
        yield f"{timezone.localtime(contact.unsubscribed_at):%Y-%m-%d %H:%M:%S}\t{contact.email}\n"


def _download(lines: Iterator[str], filename: str, content_type: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse((line.encode("utf-8") for line in lines), content_type=content_type)
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    response["Cache-Control"] = "private, no-store"
    return response


@admin.register(MailList)
class MailListAdmin(HubModelAdmin):
    list_display = ("name", "account", "enabled", "contact_count", "importing_badge", "double_opt_in", "created_at")
    list_filter = (("account", RelatedDropdownFilter), "enabled", "importing")
    list_filter_submit = True
    list_select_related = ("account",)
    search_fields = ("name",)
    ordering = ("-id",)
    fields = ("account", "name", "description", "enabled", "double_opt_in", "contact_count", "importing",
              "created_at")
    readonly_fields = ("contact_count", "importing", "created_at")
    actions = ("recount_selected",)
    actions_detail = ("import_file", "export_unsubscribed", "export_contacts")

    def get_readonly_fields(self, request: HttpRequest, obj: MailList | None = None):
        return (*self.readonly_fields, "account") if obj else self.readonly_fields

    @display(description=gettext_lazy("import in progress"), label={True: "warning", False: "info"})
    def importing_badge(self, obj: MailList):
        return obj.importing, _("importing") if obj.importing else "-"

    def save_model(self, request: HttpRequest, obj: MailList, form, change: bool) -> None:
        if not change:
            obj.save()
            return
        # Only what the form changed: a full save would write back a contact_count read
        # before a running import moved it.
        changed = [name for name in form.changed_data if name in ("name", "description", "enabled", "double_opt_in")]
        if changed:
            obj.save(update_fields=changed)

    def has_delete_permission(self, request: HttpRequest, obj: MailList | None = None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj and obj.importing)

    def get_deleted_objects(self, objs, request: HttpRequest):
        # Django's confirmation page would load every contact of the lists to list them.
        objs = list(objs)
        counts = {MailList._meta.verbose_name_plural: len(objs),
                  Contact._meta.verbose_name_plural: sum(o.contact_count for o in objs)}
        return [str(o) for o in objs], counts, set(), []

    def delete_model(self, request: HttpRequest, obj: MailList) -> None:
        store.delete_all(obj.pk)  # chunked (see store.delete_all)
        obj.delete()

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for obj in queryset:
            if obj.importing:
                messages.error(request, _("“%(list)s” is importing and was not deleted.") % {"list": obj})
                continue
            self.delete_model(request, obj)

    @action(description=gettext_lazy("Recount contacts"), permissions=["change"])
    def recount_selected(self, request: HttpRequest, queryset) -> None:
        for obj in queryset:
            services.recount(obj)
        messages.success(request, _("Counted again."))

    def _list(self, request: HttpRequest, object_id: str) -> MailList:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        return obj

    @action(description=gettext_lazy("Import a file"), url_path="import", permissions=["change"], icon="upload_file",
            variant=ActionVariant.PRIMARY)
    def import_file(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self._list(request, object_id)
        return HttpResponseRedirect(reverse("admin:contacts_importjob_upload") + f"?list={obj.pk}")

    @action(description=gettext_lazy("Export unsubscribed"), url_path="export-unsubscribed", permissions=["view"],
            icon="download")
    def export_unsubscribed(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self._list(request, object_id)
        return _download(unsubscribed_lines(obj), f"unsubscribed-{obj.pk}.txt", "text/plain; charset=utf-8")

    @action(description=gettext_lazy("Export contacts (CSV)"), url_path="export-csv", permissions=["view"],
            icon="download")
    def export_contacts(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self._list(request, object_id)
        return _download(contacts_csv(obj), f"contacts-{obj.pk}.csv", "text/csv; charset=utf-8")


class ContactForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = "__all__"

    def clean_email(self) -> str:
        try:
            return normalize_email(self.cleaned_data.get("email", ""))
        except Invalid as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        data = super().clean()
        mail_list, email = data.get("mail_list"), data.get("email")
        if self.instance.pk is None and mail_list and email and Contact.objects.filter(
                mail_list=mail_list, email=email).exists():
            raise forms.ValidationError(_("This address is already in the list."))
        return data


@admin.register(Contact)
class ContactAdmin(WindowPaginationMixin, HubModelAdmin):
    form = ContactForm
    list_display = ("email", "fullname", "mail_list", "subscribed_badge", "created_at")
    list_filter = (("mail_list", RelatedDropdownFilter), "subscribed", "pending")
    list_filter_submit = True
    list_select_related = ("mail_list",)
    search_fields = ("email", "fullname")
    search_help_text = gettext_lazy("A whole address is found at once; other text is looked for in addresses and names.")
    ordering = ("-id",)
    list_per_page = 50
    fields = ("mail_list", "email", "fullname", "sex", "birthday", "phone", "area", *(f"var{i}" for i in range(1, 11)),
              "subscribed", "pending", "unsubscribed_at", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Contact | None = None):
        fixed = ("unsubscribed_at", "created_at", "pending")
        return ("mail_list", "email", *fixed) if obj else fixed

    @display(description=gettext_lazy("subscribed"), label={"yes": "success", "no": "danger", "pending": "warning"})
    def subscribed_badge(self, obj: Contact):
        if obj.pending:
            return "pending", _("awaiting confirmation")
        return ("yes", _("subscribed")) if obj.subscribed else ("no", _("unsubscribed"))

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(email=normalize_email(term)), False  # the unique index
        except Invalid:
            return queryset.filter(Q(email__contains=term.lower()) | Q(fullname__icontains=term)), False

    def save_model(self, request: HttpRequest, obj: Contact, form, change: bool) -> None:
        if "subscribed" in form.changed_data:
            obj.unsubscribed_at = None if obj.subscribed else timezone.now()
        if change:
            with transaction.atomic():
                obj.save()
                if "subscribed" in form.changed_data and not obj.subscribed:
                    services.tell_unsubscribed(obj.account_id, obj.mail_list_id, [(obj.pk, obj.email)],
                                               obj.unsubscribed_at, "admin")
            return
        obj.account_id = obj.mail_list.account_id
        with transaction.atomic():
            obj.save()
            store.bump(obj.mail_list_id, 1)

    def delete_model(self, request: HttpRequest, obj: Contact) -> None:
        store.delete_ids(obj.mail_list_id, [obj.pk])

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        by_list: dict[int, list[int]] = {}
        for pk, mail_list_id in queryset.values_list("pk", "mail_list_id"):
            by_list.setdefault(mail_list_id, []).append(pk)
        for mail_list_id, ids in by_list.items():
            store.delete_ids(mail_list_id, ids)

