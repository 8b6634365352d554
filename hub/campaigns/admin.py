"""Campaigns in the back office: create and edit (lists, templates, sender, schedule, speed),
the progress (sent / total, rate, ETA), pause / resume / cancel, the operator's review
(approve / reject), outcomes by failure type, per-template and per-subject counts; and the
per-account campaign settings (review required, read-receipt service). Every change goes
through hub.campaigns.services (the same rules as the APIs)."""

from __future__ import annotations

import time
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.decorators import action, display
from unfold.enums import ActionVariant

from hub.admin.common import HubModelAdmin, per_object
from hub.mailtemplates.models import Template
from hub.models import FailureType

from . import dispatch, pickers, services, states
from .models import Campaign, CampaignSettings, State
from .pickers import IdPicker

STATE_LABELS = {State.SENDING: "info", State.DONE: "success", State.PAUSED: "warning", State.ERROR: "danger",
                State.CANCELLED: "danger", State.ON_HOLD: "warning", State.WAITING: "info", State.SCHEDULED: "info",
                State.STOPPED: "danger", State.INGESTING: "info"}
# Sections other apps add to a campaign's page (hub.stats: sent/failed per template and
# subject, the link to the report and its charts), registered by those apps' admin modules:
# this app imports none of them.
PAGE_SECTIONS: list = []


def register_page_section(render) -> None:
    """`render(campaign) -> safe HTML`, shown under "Results" on the campaign's page."""
    if render not in PAGE_SECTIONS:
        PAGE_SECTIONS.append(render)


START_CHOICES = [(State.ON_HOLD, gettext_lazy("On hold (start it later)")),
                 (State.SCHEDULED, gettext_lazy("At the send time")), (State.SENDING, gettext_lazy("Now"))]


def _ids(text: str) -> list[int]:
    parts = [p.strip() for p in (text or "").replace(" ", ",").split(",") if p.strip()]
    if not all(p.isdigit() and len(p) < 19 for p in parts):
        raise forms.ValidationError(_("Enter ids separated by commas."))
    return [int(p) for p in parts]


class CampaignForm(forms.ModelForm):
    templates_input = forms.CharField(
        label=gettext_lazy("Template ids"), max_length=500, widget=IdPicker("templates"),
        help_text=gettext_lazy("Comma-separated; recipients are split evenly. Search below to add one of the "
                               "account's templates."))
    lists_input = forms.CharField(
        label=gettext_lazy("Contact list ids"), max_length=1000, widget=IdPicker("lists"),
        help_text=gettext_lazy("Comma-separated; an address in several lists gets one mail. Search below to add "
                               "one of the account's lists."))
    start = forms.TypedChoiceField(label=gettext_lazy("Start"), choices=START_CHOICES, coerce=int,
                                   initial=State.SCHEDULED, required=False)

    class Meta:
        model = Campaign
        fields = ["account", "name", "templates_input", "lists_input", "send_domain", "send_account", "send_fullname",
                  "send_replyto", "send_qty_start", "send_qty", "send_time", "hour_speed", "subs_link",
                  "track_status", "track_domain", "is_need_receipt", "is_delay", "start"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The pickers offer this account's items (the add page reads the account field).
        account_id = self.instance.account_id if self.instance.pk else self.initial.get("account")
        for name in ("templates_input", "lists_input"):
            self.fields[name].widget.account_id = account_id
        if self.instance.pk:
            self.fields["templates_input"].initial = ",".join(map(str, self.instance.template_ids))
            self.fields["lists_input"].initial = ",".join(map(str, self.instance.list_ids))
            del self.fields["start"]
            if self.instance.time_start is not None:  # who gets what is fixed once it started
                for name in ("account", "templates_input", "lists_input", "send_domain", "send_account",
                             "send_qty_start", "send_qty", "send_time"):
                    if name in self.fields:
                        self.fields[name].disabled = True

    def fields_value(self) -> services.Fields:
        d = self.cleaned_data
        started = self.instance.pk and self.instance.time_start is not None
        f = services.Fields(
            name=d.get("name", ""), send_fullname=d.get("send_fullname", ""), send_replyto=d.get("send_replyto", ""),
            hour_speed=d.get("hour_speed") or 0, subs_link=d.get("subs_link"), track_status=d.get("track_status"),
            track_domain=d.get("track_domain", ""), is_need_receipt=d.get("is_need_receipt"),
            is_delay=d.get("is_delay"))
        if not started:
            f.template_ids, f.list_ids = _ids(d.get("templates_input", "")), _ids(d.get("lists_input", ""))
            f.send_domain, f.send_account = d.get("send_domain") or "all", d.get("send_account") or "all"
            f.send_qty_start, f.send_qty = d.get("send_qty_start") or 1, d.get("send_qty") or 0
            f.send_time = d.get("send_time") or timezone.now()
        return f

    def clean(self):
        data = super().clean()
        account = data.get("account") or (self.instance.account if self.instance.pk else None)
        if account is None or self.errors:
            return data
        try:
            services.check_fields(account, self.fields_value(), self.instance if self.instance.pk else None)
        except services.CampaignError as exc:
            raise forms.ValidationError(exc.message) from exc
        return data


@admin.register(Campaign)
class CampaignAdmin(HubModelAdmin):
    form = CampaignForm
    list_display = ("id", "__str__", "account", "state_badge", "verify_status", "progress_short", "send_time")
    list_display_links = ("id", "__str__")
    list_filter = ("state", "verify_status")
    search_fields = ("name", "sn")
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    actions_detail = ("pause_action", "resume_action", "cancel_action", "approve_action", "reject_action")
    readonly_fields = ("state_badge", "verify_status", "reason", "sn", "progress_display", "outcome_display",
                       "rotation_display", "results_display", "audit_trail")

    def get_urls(self):
        extra = [path("pick/<str:kind>/", self.admin_site.admin_view(self.pick_view),
                      name="campaigns_campaign_pick")]
        return extra + super().get_urls()

    def pick_view(self, request: HttpRequest, kind: str) -> JsonResponse:
        """The pickers' options: the given account's templates or lists matching `q`."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        if kind not in pickers.KINDS:
            raise Http404
        return JsonResponse({"results": pickers.options(request.GET.get("account"), kind, request.GET.get("q", ""))})

    def get_fieldsets(self, request: HttpRequest, obj: Campaign | None = None):
        main = [(None, {"fields": ["account", "name", "templates_input", "lists_input"]}),
                (gettext_lazy("Sender"), {"fields": ["send_domain", "send_account", "send_fullname", "send_replyto"]}),
                (gettext_lazy("Recipients and schedule"), {"fields": [
                    "send_qty_start", "send_qty", "send_time", "hour_speed", *(["start"] if obj is None else [])]}),
                (gettext_lazy("Options"), {"fields": ["subs_link", "track_status", "track_domain", "is_need_receipt",
                                                      "is_delay"]})]
        if obj is None:
            return main
        return [(gettext_lazy("Progress"), {"fields": ["sn", "state_badge", "verify_status", "reason",
                                                       "progress_display", "outcome_display", "rotation_display"]}),
                *([(gettext_lazy("Results"), {"fields": ["results_display"]})] if PAGE_SECTIONS else []),
                *main, (gettext_lazy("History"), {"fields": ["audit_trail"]})]

    @display(description=gettext_lazy("state"), label=STATE_LABELS)
    def state_badge(self, obj: Campaign):
        return obj.state, obj.get_state_display()

    @display(description=gettext_lazy("queued"))
    def progress_short(self, obj: Campaign) -> str:
        return f"{obj.sent_count if obj.state == State.DONE else obj.queued} / {obj.send_qty_remark}"

    @per_object
    def _progress(self, obj: Campaign) -> services.Progress:
        return services.progress(obj)

    @display(description=gettext_lazy("progress"))
    def progress_display(self, obj: Campaign) -> str:
        p = self._progress(obj)
        rate = eta = "-"
        if obj.time_start and p.sent:
            seconds = max(1.0, ((obj.time_end or timezone.now()) - obj.time_start).total_seconds())
            average = p.sent / seconds * 3600
            current = dispatch.current_rate(obj, time.time()) if obj.state == State.SENDING else None
            rate = _("%(now)s per hour now, %(avg)s on average") % {
                "now": "-" if current is None else f"{current:,.0f}", "avg": f"{average:,.0f}"}
            per_hour = current or average
            left = max(0, obj.send_qty_remark - p.total) + p.waiting
            if obj.state == State.SENDING and left and per_hour:
                eta = str(timezone.localtime(timezone.now() + timedelta(hours=left / per_hour)))[:16]
        rows = [(_("sent / contacts"), f"{p.sent:,} / {max(obj.send_qty_remark, p.total):,}"),
                (_("contacts read"), f"{p.total:,}"), (_("failed"), f"{p.failed:,}"),
                *([(_("of the sent, bounced later"), f"{p.bounced:,}")] if p.bounced else []),
                (_("waiting or on the way"), f"{p.waiting:,}"), (_("cancelled before sending"), f"{p.cancelled:,}"),
                (_("skipped"), ", ".join(f"{k}: {v:,}" for k, v in p.skipped.items()) or "0"),
                (_("rate"), rate), (_("estimated end"), eta)]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @display(description=gettext_lazy("failures by type"))
    def outcome_display(self, obj: Campaign) -> str:
        failures = self._progress(obj).failure_types
        if not failures:
            return "-"
        labels = dict(FailureType.choices)
        return format_html_join(", ", "{}: {}", ((labels.get(k, _("other")), n) for k, n in sorted(
            failures.items(), key=lambda kv: -kv[1])))

    @display(description=gettext_lazy("templates and subjects"))
    @per_object
    def rotation_display(self, obj: Campaign) -> str:
        names = dict(Template.objects.filter(pk__in=obj.template_ids).values_list("pk", "name"))
        rows = [(f"{names.get(int(k), k)}", _("recipients"), n) for k, n in (obj.per_template or {}).items()]
        rows += [(f"{names.get(int(k.split(':')[0]), k)} #{k.split(':')[1]}", _("subject"), n)
                 for k, n in (obj.per_subject or {}).items()]
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)) if rows else "-"

    @display(description=gettext_lazy("sent and failed per template and subject"))
    @per_object
    def results_display(self, obj: Campaign) -> str:
        return format_html_join("", "{}", ((render(obj),) for render in PAGE_SECTIONS)) if obj.pk else "-"

    def save_model(self, request: HttpRequest, obj: Campaign, form: CampaignForm, change: bool) -> None:
        fields = form.fields_value()
        if change:
            saved = services.edit_campaign(obj.account, obj.pk, fields)
        else:
            saved = services.create_campaign(form.cleaned_data["account"], fields,
                                             form.cleaned_data.get("start") or State.SCHEDULED, count=False)
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_state"})
        obj._state.adding, obj._state.db = False, saved._state.db

    # -- actions

    def _campaign(self, request: HttpRequest, object_id: str) -> Campaign:
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None or not self.has_change_permission(request, campaign):
            raise Http404
        return campaign

    def _state_action(self, request: HttpRequest, object_id: str, wanted: int, title: str, intro: str,
                      done: str) -> HttpResponse:
        campaign = self._campaign(request, object_id)
        back = HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        if request.method == "POST":
            try:
                services.set_state(campaign.account, campaign.pk, wanted)
            except services.CampaignError as exc:
                messages.error(request, exc.message)
                return back
            self.audit(request, campaign, done)
            messages.success(request, done)
            return back
        if not states.allowed(campaign.state, wanted):
            messages.error(request, _("Not possible in the campaign's current state."))
            return back
        return self.action_page(request, campaign, title=title, intro=intro, submit_label=title)

    @action(description=gettext_lazy("Pause"), url_path="pause", permissions=["change"], icon="pause")
    def pause_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._state_action(request, object_id, State.PAUSED, _("Pause"),
                                  _("Stops the campaign within seconds; mail not yet taken by a worker is held."),
                                  _("Campaign paused"))

    @action(description=gettext_lazy("Resume / start now"), url_path="resume", permissions=["change"],
            icon="play_arrow")
    def resume_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._state_action(request, object_id, State.SENDING, _("Resume / start now"),
                                  _("Sends from where the campaign stopped (or starts it now)."),
                                  _("Campaign sending"))

    @action(description=gettext_lazy("Cancel"), url_path="cancel", permissions=["change"], icon="cancel",
            variant=ActionVariant.DANGER)
    def cancel_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._state_action(request, object_id, State.CANCELLED, _("Cancel"),
                                  _("Ends the campaign for good; mail not yet sent is removed and its quota given "
                                    "back."), _("Campaign cancelled"))

    def _review(self, request: HttpRequest, object_id: str, approve: bool) -> HttpResponse:
        campaign = self._campaign(request, object_id)
        if request.method == "POST":
            services.review(campaign.pk, approve, request.user.get_username())
            done = _("Campaign approved") if approve else _("Campaign rejected")
            self.audit(request, campaign, done)
            messages.success(request, done)
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        title = _("Approve") if approve else _("Reject")
        return self.action_page(request, campaign, title=title, submit_label=title,
                                intro=_("Only approved campaigns send. An approved campaign whose send time has "
                                        "come starts at once."))

    @action(description=gettext_lazy("Approve"), url_path="approve", permissions=["change"], icon="verified")
    def approve_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._review(request, object_id, True)

    @action(description=gettext_lazy("Reject"), url_path="reject", permissions=["change"], icon="block",
            variant=ActionVariant.WARNING)
    def reject_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._review(request, object_id, False)


@admin.register(CampaignSettings)
class CampaignSettingsAdmin(HubModelAdmin):
    list_display = ("account", "needs_review", "read_receipts")
    list_editable = ("needs_review", "read_receipts")
    raw_id_fields = ("account",)

