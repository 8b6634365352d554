"""Imports in the back office: the read-only job list, the upload page (a file for a list:
the same checks and job as the APIs, hub.contacts.services.start_import) and a progress page
whose bar follows the job (it polls a small JSON view) until it ends with its counts."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.contrib.filters.admin import RelatedDropdownFilter
from unfold.decorators import action, display
from unfold.enums import ActionVariant

from hub.admin.common import HubModelAdmin

from . import services
from .models import ImportJob, MailList

STATUS_LABELS = {0: "info", 2: "info", 1: "success", -1: "danger", -2: "danger", -3: "danger"}


class ImportForm(forms.Form):
    mail_list = forms.ModelChoiceField(queryset=MailList.objects.select_related("account").order_by("-id"),
                                       label=gettext_lazy("contact list"))
    file = forms.FileField(label=gettext_lazy("file"),
                           help_text=gettext_lazy("Text with ;-separated fields, CSV (comma or tab, with or without a "
                                                  "header row) or XLSX; UTF-8 or GBK."))


def job_state(job: ImportJob) -> dict:
    return {"id": job.pk, "status": job.status, "status_label": str(job.get_status_display()),
            "finished": job.finished, "progress": job.progress, "count_all": job.count_all,
            "count_imported": job.count_imported, "count_invalid": job.count_invalid,
            "count_duplicate": job.count_duplicate, "error": job.error}


@admin.register(ImportJob)
class ImportJobAdmin(HubModelAdmin):
    list_display = ("id", "filename", "mail_list", "status_badge", "progress_display", "count_all", "count_imported",
                    "count_invalid", "count_duplicate", "created_at")
    list_display_links = ("id", "filename")
    list_filter = ("status", ("mail_list", RelatedDropdownFilter))
    list_filter_submit = True
    list_select_related = ("mail_list",)
    search_fields = ("filename",)
    ordering = ("-id",)
    actions_list = ("upload_link",)
    actions_detail = ("progress_link",)
    warn_unsaved_form = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_upload_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("contacts.add_contact")

    @display(description=gettext_lazy("status"), label=STATUS_LABELS)
    def status_badge(self, obj: ImportJob):
        return obj.status, obj.get_status_display()

    @display(description=gettext_lazy("progress (%)"))
    def progress_display(self, obj: ImportJob) -> str:
        return f"{obj.progress}%"

    def get_urls(self):
        urls = [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="contacts_importjob_upload"),
            path("<int:job_id>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="contacts_importjob_progress"),
            path("<int:job_id>/status.json", self.admin_site.admin_view(self.status_view),
                 name="contacts_importjob_status"),
        ]
        return urls + super().get_urls()

    @action(description=gettext_lazy("Import a file"), url_path="upload-link", permissions=["upload"],
            icon="upload_file", variant=ActionVariant.PRIMARY)
    def upload_link(self, request: HttpRequest) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:contacts_importjob_upload"))

    @action(description=gettext_lazy("Progress"), url_path="progress-link", permissions=["view"], icon="monitoring")
    def progress_link(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:contacts_importjob_progress", args=[int(object_id)]))

    def _context(self, request: HttpRequest, title: str, **extra) -> dict:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **extra}

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_upload_permission(request):
            raise PermissionDenied
        initial = {"mail_list": request.GET.get("list")} if request.GET.get("list", "").isdigit() else {}
        form = ImportForm(request.POST or None, request.FILES or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            mail_list = form.cleaned_data["mail_list"]
            upload = form.cleaned_data["file"]
            try:
                job = services.start_import(mail_list.account, mail_list.pk, upload, upload.name)
            except services.ContactError as exc:
                form.add_error("file", exc.message)
            else:
                self.log_addition(request, job, [{"added": {}}])
                return HttpResponseRedirect(reverse("admin:contacts_importjob_progress", args=[job.pk]))
        return TemplateResponse(request, "contacts/admin/import_upload.html",
                                self._context(request, _("Import contacts from a file"), form=form))

    def _job(self, request: HttpRequest, job_id: int) -> ImportJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = ImportJob.objects.select_related("mail_list").filter(pk=job_id).first()
        if job is None:
            raise Http404
        return job

    def progress_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        job = self._job(request, job_id)
        return TemplateResponse(request, "contacts/admin/import_progress.html", self._context(
            request, _("Import #%(id)s: %(file)s") % {"id": job.pk, "file": job.filename}, job=job,
            state=job_state(job)))

    def status_view(self, request: HttpRequest, job_id: int) -> JsonResponse:
        response = JsonResponse(job_state(self._job(request, job_id)))
        response["Cache-Control"] = "no-store"
        return response
