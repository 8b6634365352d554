"""The statistics in the back office: a campaign's report page (charts drawn on the server,
exports as CSV and XLSX), the per-template and per-subject results on the campaign's own
page (through hub.campaigns.admin.PAGE_SECTIONS: that app does not import this one), and the
failed recipients list. The admin dashboard's campaign figures are in dashboard.py."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from hub.admin.common import HubModelAdmin
from hub.admin.dashboard import register_section
from hub.campaigns import admin as campaign_admin
from hub.campaigns.models import Campaign
from hub.models import FailureType

from . import charts, exports
from .dashboard import campaign_figures
from .models import TYPES, Failure
from .report import campaign_report

REPORT_PERMISSION = "campaigns.view_campaign"


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def results_section(campaign: Campaign) -> str:
    """On the campaign's page: sent / failed per template and per subject, and the report link."""
    report = campaign_report(campaign.pk)
    rows = [(p.label, _("template"), f"{p.counts.sent:,}", f"{p.counts.failed:,}",
             _rate(p.counts.failed, p.counts.attempted)) for p in report.templates]
    rows += [(p.label, _("subject"), f"{p.counts.sent:,}", f"{p.counts.failed:,}",
              _rate(p.counts.failed, p.counts.attempted)) for p in report.subjects]
    link = format_html('<p><a class="text-primary-600 dark:text-primary-500" id="hub-campaign-report" href="{}">{}</a></p>',
                       reverse("admin:stats_campaign_report", args=[campaign.pk]), _("Report, charts and exports"))
    if not rows:
        return format_html("{}<p>{}</p>", link, _("No outcomes yet."))
    head = format_html("<tr><th></th><th></th><th>{}</th><th>{}</th><th>{}</th></tr>", _("sent"), _("failed"),
                       _("failure rate"))
    body = format_html_join("", '<tr><td>{}</td><td>{}</td><td class="hub-num">{}</td><td class="hub-num">{}</td>'
                                '<td class="hub-num">{}</td></tr>', rows)
    return format_html('{}<table id="hub-campaign-results">{}{}</table>', link, head, body)


campaign_admin.register_page_section(results_section)
register_section("admin/stats/dashboard_campaigns.html", campaign_figures)


def _tracking(campaign, sent: int) -> dict:
    """The tracking app's counters of this campaign, by model name (hub.tracking is reached
    from hub.campaigns, which this app reads: an import would make a cycle)."""
    if not apps.is_installed("hub.tracking") or not campaign.track_status:
        return {"track": None}
    track = apps.get_model("tracking", "CampaignTrack").objects.filter(campaign_id=campaign.pk).first()
    if track is None:
        return {"track": None}
    return {"track": track, "track_url": reverse("admin:tracking_campaigntrack_change", args=[track.pk]),
            "open_rate": _rate(track.open_unique, sent), "click_rate": _rate(track.click_unique, sent)}


@admin.register(Failure)
class FailureAdmin(HubModelAdmin):
    """Failed recipients (delivery failures and bounces), read-only; and the report pages."""

    list_display = ("at", "email", "failure_type_label", "kind", "campaign_id", "account")
    list_filter = ("kind", "failure_type")
    search_fields = ("email",)
    list_select_related = ("account",)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description=gettext_lazy("failure type"))
    def failure_type_label(self, obj: Failure) -> str:
        return FailureType(obj.failure_type).label if obj.failure_type in TYPES else "-"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("campaign/<int:campaign_id>/", view(self.report_view), name="stats_campaign_report"),
            path("campaign/<int:campaign_id>/export.<str:fmt>", view(self.export_view),
                 name="stats_campaign_report_export"),
            *super().get_urls(),
        ]

    def _campaign(self, request: HttpRequest, campaign_id: int) -> Campaign:
        if not request.user.has_perm(REPORT_PERMISSION):
            raise PermissionDenied
        campaign = Campaign.objects.select_related("account").filter(pk=campaign_id).first()
        if campaign is None:
            raise Http404
        return campaign

    def report_view(self, request: HttpRequest, campaign_id: int) -> HttpResponse:
        campaign = self._campaign(request, campaign_id)
        report = campaign_report(campaign.pk)
        t = report.totals
        types = [(str(FailureType(n).label), t.t(n)) for n in TYPES if t.t(n)]
        untyped = t.failed + t.bounced - sum(n for _l, n in types)
        if untyped > 0:
            types.append((_("other"), untyped))
        exports_url = "admin:stats_campaign_report_export"
        context = {
            **self.admin_site.each_context(request),
            "opts": Campaign._meta, "title": _("Report: %(campaign)s") % {"campaign": campaign}, "campaign": campaign,
            "report": report, "totals": t, "failure_rate": _rate(t.failed, t.attempted),
            "hourly_chart": charts.hourly_bars(report.hours, title=_("Sent and failed per hour")),
            "type_bars": charts.share_bars(sorted(types, key=lambda kv: -kv[1])),
            "templates": [(p, _rate(p.counts.failed, p.counts.attempted)) for p in report.templates],
            "subjects": [(p, _rate(p.counts.failed, p.counts.attempted)) for p in report.subjects],
            "subject_bars": charts.share_bars([(p.label, p.counts.sent) for p in report.subjects], charts.SENT),
            "campaign_url": reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
            "csv_url": reverse(exports_url, args=[campaign.pk, "csv"]),
            "xlsx_url": reverse(exports_url, args=[campaign.pk, "xlsx"]),
            "failures_url": reverse(exports_url, args=[campaign.pk, "failures.csv"]),
            **_tracking(campaign, t.sent),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/stats/campaign_report.html", context)

    def export_view(self, request: HttpRequest, campaign_id: int, fmt: str) -> HttpResponse:
        campaign = self._campaign(request, campaign_id)
        name = f"campaign-{campaign.pk}"
        if fmt == "csv":
            response = HttpResponse(exports.report_csv(campaign_report(campaign.pk)),
                                    content_type="text/csv; charset=utf-8")
        elif fmt == "xlsx":
            response = HttpResponse(
                exports.report_xlsx(campaign_report(campaign.pk)),
                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        elif fmt == "failures.csv":
            response = StreamingHttpResponse(exports.failures_csv(campaign.pk), content_type="text/csv; charset=utf-8")
            name += "-failures"
            fmt = "csv"
        else:
            raise Http404
        response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
        return response
