"""Templates in the back office: edit (subjects as `A|B`), the check's result with each
finding, a preview rendered for a chosen contact in a sandboxed iframe (the send-log
preview's CSP and sandbox), a "send test" through the hub itself, a re-check, and the
operator's red pass. Saves go through the services' validation and queue a check."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.clickjacking import xframe_options_sameorigin
from unfold.admin import TabularInline
from unfold.decorators import action, display
from unfold.enums import ActionVariant

from hub.admin.common import HubModelAdmin, per_object
from hub.admin.logs import PREVIEW_CSP
from hub.contacts.models import Contact, MailList
from hub.models import App
from hub.sending import Refusal

from . import services
from .links import links_for
from .models import RiskyPhrase, Template, TemplateAttachment
from .personalize import SAMPLE_CONTACT, contact_values, render
from .testsend import TEST_LINKS, send_test

COLOUR_LABELS = {"green": "success", "yellow": "warning", "red": "danger", "red_pass": "info", "": "info"}


class TemplateForm(forms.ModelForm):
    subjects_input = forms.CharField(
        label=gettext_lazy("Subjects"), max_length=6000,
        help_text=gettext_lazy("Several subjects separated by | (a campaign rotates them). Placeholders work here too."))

    class Meta:
        model = Template
        fields = ["account", "name", "subjects_input", "html", "text", "encoding", "shared_with_subaccounts"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["subjects_input"].initial = "|".join(self.instance.subjects)

    def _service(self, func, *args):
        try:
            return func(*args)
        except services.TemplateError as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean_name(self) -> str:
        return self._service(services.clean_name, self.cleaned_data.get("name", ""))

    def clean_subjects_input(self) -> list[str]:
        return self._service(services.split_subjects, self.cleaned_data.get("subjects_input", ""))

    def clean_html(self) -> str:
        return self._service(services.clean_body, self.cleaned_data.get("html", ""), "HTML", True)

    def clean_text(self) -> str:
        return self._service(services.clean_body, self.cleaned_data.get("text", ""), "text", False)

    def save(self, commit: bool = True) -> Template:
        self.instance.subjects = self.cleaned_data["subjects_input"]
        return super().save(commit)


class TestSendForm(forms.Form):
    app = forms.ModelChoiceField(label=gettext_lazy("Send as app"), queryset=App.objects.none())
    to = forms.EmailField(label=gettext_lazy("Send to"), max_length=254)
    contact_email = forms.CharField(
        label=gettext_lazy("Render for contact (email address, optional)"), max_length=254, required=False)

    def __init__(self, template: Template, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Enabled apps of the template's account only: the API refuses a disabled app's sends.
        self.fields["app"].queryset = App.objects.filter(account_id=template.account_id, enabled=True).order_by("id")


class AttachmentInline(TabularInline):
    model = TemplateAttachment
    fields = ["filename", "content_type", "size", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # added through the APIs (multipart `file[]`)

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def _contact_for(template: Template, email: str) -> Contact | None:
    """A contact of the template's account with this address (tenancy: never another's).
    Looked up list by list: the unique (mail_list, email) index serves each, where a filter
    on the account alone would scan millions of rows."""
    email = (email or "").strip().lower()
    if not email:
        return None
    lists = list(MailList.objects.filter(account_id=template.account_id).values_list("id", flat=True)[:1000])
    return Contact.objects.filter(mail_list_id__in=lists, email=email).order_by("id").first()


@admin.register(Template)
class TemplateAdmin(HubModelAdmin):
    form = TemplateForm
    list_display = ("id", "name", "account", "colour_badge", "size_display", "shared_with_subaccounts", "updated_at")
    list_display_links = ("id", "name")
    list_filter = ("colour", "shared_with_subaccounts")
    search_fields = ("name",)
    list_select_related = ("account",)
    autocomplete_fields = ()
    raw_id_fields = ("account",)
    inlines = [AttachmentInline]
    actions_detail = ("preview_page", "send_test_action", "recheck", "pass_red")
    readonly_fields = ("check_display", "findings_display", "preview", "audit_trail")

    def get_fieldsets(self, request: HttpRequest, obj: Template | None = None):
        main = (None, {"fields": ["account", "name", "subjects_input", "html", "text", "encoding",
                                  "shared_with_subaccounts"]})
        if obj is None:
            return [main]
        return [main, (gettext_lazy("Check"), {"fields": ["check_display", "findings_display"]}),
                (gettext_lazy("Preview"), {"fields": ["preview"]}),
                (gettext_lazy("History"), {"fields": ["audit_trail"]})]

    # -- list and detail displays

    @display(description=gettext_lazy("colour"), label=COLOUR_LABELS)
    def colour_badge(self, obj: Template):
        return obj.colour, obj.get_colour_display()

    @display(description=gettext_lazy("size"))
    def size_display(self, obj: Template) -> str:
        return f"{obj.size_kb} KB" if obj.size_status == 1 else "…"

    @display(description=gettext_lazy("check result"))
    @per_object
    def check_display(self, obj: Template) -> str:
        if obj.check_status == Template.CheckStatus.CHECKING:
            return _("Checking… (reload the page in a moment)")
        passed = _(" · passed by %(who)s") % {"who": obj.red_pass_by} if obj.red_pass_by else ""
        return format_html("<strong>{}</strong> · {} · {} KB{}", obj.get_colour_display(),
                           obj.get_check_status_display(), obj.size_kb, passed)

    @display(description=gettext_lazy("findings"))
    @per_object
    def findings_display(self, obj: Template) -> str:
        if obj.check_status == Template.CheckStatus.CHECKING:
            return "-"
        if not obj.findings:
            return _("No findings.")
        rows = ((f.get("level", ""), _(f.get("message", "")), f.get("detail", "")) for f in obj.findings)
        return format_html('<table class="text-sm hub-findings">{}</table>', format_html_join(
            "", '<tr><td class="pr-4 font-semibold">{}</td><td class="pr-4">{}</td><td><code>{}</code></td></tr>',
            rows))

    @display(description=gettext_lazy("HTML preview"))
    @per_object
    def preview(self, obj: Template) -> str:
        url = reverse("admin:mailtemplates_template_preview", args=[obj.pk])
        page = reverse("admin:mailtemplates_template_preview_page", args=[obj.pk])
        live = reverse("admin:mailtemplates_template_preview_live", args=[obj.pk])
        # "Preview changes" posts the form being edited (unsaved) into the iframe, by the
        # button's formaction/formtarget: a live preview without any script on the page.
        return format_html(
            '<iframe id="hub-preview" name="hub-preview" src="{}" sandbox="" referrerpolicy="no-referrer" '
            'loading="lazy" title="{}" class="bg-white border border-base-200 rounded-default w-full" '
            'style="height:420px"></iframe>'
            '<p class="mt-2 text-sm"><button type="submit" formaction="{}" formmethod="post" formtarget="hub-preview" '
            'formnovalidate class="border border-base-200 rounded-default px-2 py-1" id="hub-preview-live">{}</button> · '
            '<a href="{}">{}</a> · {}</p>',
            url, _("HTML preview"), live, _("Preview changes"), page, _("Preview for a chosen contact"),
            _("Scripts, forms and remote content (images, fonts, tracking pixels) are blocked."))

    # -- saving: the services' rules (revision, check)

    def save_model(self, request: HttpRequest, obj: Template, form, change: bool) -> None:
        services.mark_changed(obj)
        with transaction.atomic():
            obj.save()
            services.queue_check(obj)

    def save_formset(self, request, form, formset, change) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is TemplateAttachment and formset.deleted_objects:
            services.touch(form.instance)

    # -- views

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        extra = [path("<path:object_id>/preview/", self.admin_site.admin_view(self.preview_view),
                      name="{}_{}_preview".format(*info)),
                 path("<path:object_id>/preview-live/", self.admin_site.admin_view(self.preview_live_view),
                      name="{}_{}_preview_live".format(*info))]
        return extra + super().get_urls()

    def _template(self, request: HttpRequest, object_id: str, perm: str = "view") -> Template:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        allowed = self.has_change_permission(request, obj) if perm == "change" else self.has_view_permission(request, obj)
        if not allowed:
            raise PermissionDenied
        return obj

    def _rendered(self, template: Template, email: str, subject: str):
        contact = _contact_for(template, email)
        if contact is not None:
            values, links = contact_values(contact), links_for(template, contact)
        else:
            values, links = SAMPLE_CONTACT, TEST_LINKS
        index = int(subject) if subject.isdigit() and len(subject) < 4 else 0
        return render(template, values, links, index), contact, index

    @staticmethod
    def _sandboxed(html: str) -> HttpResponse:
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = PREVIEW_CSP
        response["Referrer-Policy"] = "no-referrer"
        response["Cache-Control"] = "private, no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @xframe_options_sameorigin
    def preview_live_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The HTML being edited (POSTed by "Preview changes", not saved) rendered for the
        sample contact, under the same CSP and sandbox."""
        template = self._template(request, object_id)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        draft = Template(pk=None, account_id=template.account_id, subjects=["-"],
                         html=request.POST.get("html", "")[: 2 * 1024 * 1024], text="")
        return self._sandboxed(render(draft, SAMPLE_CONTACT, TEST_LINKS).html)

    @xframe_options_sameorigin
    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The HTML rendered for ?email= (a contact of the template's account) or the sample
        contact, under the send-log preview's CSP: no scripts, forms, network; sandboxed."""
        template = self._template(request, object_id)
        rendered, _contact, _index = self._rendered(template, request.GET.get("email", ""),
                                                    request.GET.get("subject", ""))
        return self._sandboxed(rendered.html)

    @action(description=gettext_lazy("Preview"), url_path="preview-page", permissions=["view"], icon="visibility")
    def preview_page(self, request: HttpRequest, object_id: str) -> HttpResponse:
        from urllib.parse import urlencode

        template = self._template(request, object_id)
        email, subject = request.GET.get("email", "")[:254], request.GET.get("subject", "")
        rendered, contact, index = self._rendered(template, email, subject)
        frame_url = reverse("admin:mailtemplates_template_preview", args=[template.pk]) + "?" + urlencode(
            {"email": email, "subject": index})
        return self.action_page(
            request, template, title=_("Preview: %(name)s") % {"name": template.name},
            template="admin/mailtemplates/preview.html", rendered=rendered, frame_url=frame_url, email=email,
            not_found=bool(email.strip()) and contact is None, subjects=template.subjects, subject_index=index)

    @action(description=gettext_lazy("Send test"), url_path="send-test", permissions=["change"], icon="send",
            variant=ActionVariant.PRIMARY)
    def send_test_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        template = self._template(request, object_id, "change")
        form = TestSendForm(template, request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            contact = _contact_for(template, data["contact_email"])
            if data["contact_email"].strip() and contact is None:
                form.add_error("contact_email", _("No contact of this account has this address."))
            else:
                try:
                    row = send_test(template, data["app"], data["to"], contact)
                except Refusal as refusal:
                    messages.error(request, _("Refused: %(msg)s (%(error)s) %(detail)s") % {
                        "msg": refusal.msg, "error": refusal.error, "detail": refusal.detail})
                else:
                    note = _("Test mail #%(id)s to %(to)s: %(status)s") % {
                        "id": row.pk, "to": row.to, "status": row.get_status_display()}
                    level = messages.SUCCESS if row.status == row.Status.SENT else messages.WARNING
                    messages.add_message(request, level, f"{note} {row.error}".strip())
                    self.audit(request, template, note)
                    return HttpResponseRedirect(reverse("admin:mailtemplates_template_change", args=[template.pk]))
        return self.action_page(
            request, template, title=_("Send test: %(name)s") % {"name": template.name},
            intro=_("Renders the template (for a contact of this account, or the sample contact) and sends it "
                    "through the hub as one of the account's apps. It appears in the send logs."),
            form=form, submit_label=_("Send"))

    @action(description=gettext_lazy("Check again"), url_path="recheck", permissions=["change"], icon="refresh")
    def recheck(self, request: HttpRequest, object_id: str) -> HttpResponse:
        template = self._template(request, object_id, "change")
        if request.method == "POST":
            services.touch(template)
            self.audit(request, template, _("Check queued again"))
            messages.success(request, _("The check is queued."))
            return HttpResponseRedirect(reverse("admin:mailtemplates_template_change", args=[template.pk]))
        return self.action_page(request, template, title=_("Check again: %(name)s") % {"name": template.name},
                                intro=_("Queues a new check of the template."), submit_label=_("Check"))

    @action(description=gettext_lazy("Pass despite red"), url_path="red-pass", permissions=["change"],
            icon="verified", variant=ActionVariant.WARNING)
    def pass_red(self, request: HttpRequest, object_id: str) -> HttpResponse:
        template = self._template(request, object_id, "change")
        if request.method == "POST":
            if services.red_pass(template, request.user.get_username()):
                self.audit(request, template, _("Red check passed by an operator (red_pass)"))
                messages.success(request, _("The template may be sent (red_pass)."))
            else:
                messages.error(request, _("Only a checked red template can be passed."))
            return HttpResponseRedirect(reverse("admin:mailtemplates_template_change", args=[template.pk]))
        return self.action_page(
            request, template, title=_("Pass despite red: %(name)s") % {"name": template.name},
            intro=_("Lets this red template be sent (colour red_pass, status 1). Its findings stay shown; the "
                    "next change of the template checks it again and clears the pass."),
            submit_label=_("Pass"))


@admin.register(RiskyPhrase)
class RiskyPhraseAdmin(HubModelAdmin):
    list_display = ("phrase", "enabled")
    list_editable = ("enabled",)
    search_fields = ("phrase",)
