"""Tracking in the back office: the tracking domains (added only with a right CNAME, checked
again on demand) and, per campaign, the "opens and clicks" page: people and machines side by
side, over time, by device, browser, OS and location, and per link."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.contrib.filters.admin import RelatedDropdownFilter
from unfold.decorators import action

from hub.admin.common import HubModelAdmin

from . import charts, reports, trackdomains
from .models import CampaignTrack, TrackDomain


class TrackDomainForm(forms.ModelForm):
    class Meta:
        model = TrackDomain
        fields = ("account", "domain", "is_default")

    def clean(self):
        data = super().clean()
        if self.errors or self.instance.pk:
            return data
        try:
            # Checks the CNAME first; refuses (and writes nothing) when it is wrong.
            self.instance = trackdomains.edit_domain(data["account"], data["domain"], data.get("is_default", False))
        except reports.TrackingError as exc:
            raise forms.ValidationError(exc.message) from None
        return data


@admin.register(TrackDomain)
class TrackDomainAdmin(HubModelAdmin):
    form = TrackDomainForm
    list_display = ("domain", "account", "is_default", "is_cname", "checked_at")
    list_filter = (("account", RelatedDropdownFilter), "is_cname", "is_default")
    list_filter_submit = True
    list_select_related = ("account",)
    search_fields = ("domain",)
    readonly_fields = ("is_cname", "checked_at", "created_at")
    actions = ("check_now",)

    def get_readonly_fields(self, request: HttpRequest, obj: TrackDomain | None = None):
        return (*self.readonly_fields, "account", "domain") if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: TrackDomain, form, change: bool) -> None:
        if change:
            trackdomains.edit_domain(obj.account, obj.domain, obj.is_default)
        # A new one was saved by the form's CNAME check (trackdomains.edit_domain).

    @action(description=gettext_lazy("Check the CNAME now"))
    def check_now(self, request: HttpRequest, queryset) -> None:
        for domain in queryset:
            trackdomains.recheck(domain)
        messages.info(request, _("Checked %(n)s tracking domains.") % {"n": queryset.count()})


@admin.register(CampaignTrack)
class CampaignTrackAdmin(HubModelAdmin):
    list_display = ("campaign", "account", "open_unique", "machine_open_unique", "click_unique",
                    "machine_click_unique")
    list_filter = (("account", RelatedDropdownFilter),)
    list_filter_submit = True
    list_select_related = ("campaign", "account")
    search_fields = ("campaign__name", "campaign__sn")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None) -> HttpResponse:
        """The campaign's "opens and clicks" report instead of a form."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        track = CampaignTrack.objects.select_related("campaign").filter(pk=object_id).first() if (
            str(object_id).isdigit()) else None
        if track is None:
            return self._get_obj_does_not_exist_redirect(request, self.model._meta, object_id)
        b = track.breakdown or {}
        sent = reports.send_figures(track.campaign)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": track,
            "title": _("Opens and clicks: %(campaign)s") % {"campaign": track.campaign},
            "track": track, "sent": sent,
            "open_rate": reports.ratio(track.open_unique, sent.sent),
            "click_rate": reports.ratio(track.click_unique, sent.sent),
            "machine_rate": reports.ratio(track.machine_open_unique, sent.sent),
            "opens": charts.hourly(b.get("open_hour"), b.get("machine_open_hour")),
            "clicks": charts.hourly(b.get("click_hour"), b.get("machine_click_hour")),
            "chart_width": charts.WIDTH, "chart_height": charts.HEIGHT,
            "shares": [(_("Devices"), charts.top(b.get("device"))), (_("Browsers"), charts.top(b.get("browser"))),
                       (_("Operating systems"), charts.top(b.get("os"))),
                       (_("Locations"), charts.top(b.get("addr"))),
                       (_("Machine hits by rule"), charts.top(b.get("machine")))],
            "links": reports.links(track.campaign),
        }
        return TemplateResponse(request, "tracking/admin/report.html", context)
