"""Native API: tracking reports of a campaign and the tracking domains (V28 chapter 3).
Parsing and answering only; the reports, rules and tenancy are in hub.tracking."""

from __future__ import annotations

import csv
import io

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers as drf
from rest_framework.response import Response

from hub.tracking import reports, trackdomains
from hub.tracking.reports import TrackingError

from .base import ApiError, NativeView, no_content
from .errors import ERRORS

MAX_ID = 2**63 - 1
USER_FIELDS = ("email_id", "email", "browser", "os", "device", "addr_first", "ip_first", "ip_last", "addr_last",
               "open_total", "click_total", "open_first", "open_last", "click_first", "click_last",
               "machine_open_total", "machine_click_total", "machine_reason")


class TrackingBase(NativeView):
    tag = "tracking"

    def handle_exception(self, exc):
        if isinstance(exc, TrackingError):
            exc = ApiError("not_found" if exc.http_status == 404 else exc.code, exc.message, exc.http_status)
        return super().handle_exception(exc)

    def campaign(self, campaign_id: int):
        return reports.find_campaign(self.account, send_id=campaign_id)


class TrackLinkOut(drf.Serializer):
    link_id = drf.IntegerField(source="pk")
    link = drf.CharField(source="url", help_text="the href as written in the template (placeholders kept)")
    click_unique = drf.IntegerField(help_text="people who clicked")
    click_total = drf.IntegerField(help_text="human clicks")
    click_first = drf.DateTimeField(allow_null=True)
    click_last = drf.DateTimeField(allow_null=True)
    machine_click_total = drf.IntegerField(help_text="clicks by scanners and proxies")


class TrackOverviewOut(drf.Serializer):
    track_id = drf.IntegerField()
    campaign_id = drf.IntegerField()
    ident = drf.CharField()
    queued = drf.IntegerField()
    sent = drf.IntegerField()
    failed = drf.IntegerField()
    human = drf.DictField(help_text="open_unique, open_total, open_first, open_last, click_unique, click_total, "
                                    "click_first, click_last (people)")
    machine = drf.DictField(help_text="open_unique (opened by machines only), open_total, click_unique, "
                                      "click_total, and reasons: hits per rule (docs/tracking.md)")
    open_rate = drf.FloatField(help_text="human open_unique / sent, percent")
    click_rate = drf.FloatField()
    breakdown = drf.DictField(help_text="people's first opens by device, browser, os, addr; hits per hour")
    links = TrackLinkOut(many=True)


class RecipientOut(drf.Serializer):
    email_id = drf.IntegerField(source="pk")
    email = drf.CharField()
    browser = drf.CharField()
    os = drf.CharField()
    device = drf.CharField(help_text="pc or mobile")
    addr_first = drf.CharField()
    ip_first = drf.CharField(allow_null=True)
    ip_last = drf.CharField(allow_null=True)
    addr_last = drf.CharField()
    open_total = drf.IntegerField()
    click_total = drf.IntegerField()
    open_first = drf.DateTimeField(allow_null=True)
    open_last = drf.DateTimeField(allow_null=True)
    click_first = drf.DateTimeField(allow_null=True)
    click_last = drf.DateTimeField(allow_null=True)
    machine_open_total = drf.IntegerField()
    machine_click_total = drf.IntegerField()
    machine_reason = drf.CharField(help_text="the rule of the last machine hit, '' when none")


class ClickOut(drf.Serializer):
    click_id = drf.IntegerField(source="pk")
    email = drf.CharField(source="recipient.email")
    link_id = drf.IntegerField()
    link = drf.CharField(source="link.url")
    click_total = drf.IntegerField()
    click_first = drf.DateTimeField(allow_null=True)
    click_last = drf.DateTimeField(allow_null=True)
    machine_click_total = drf.IntegerField()


class TrackPageQuery(drf.Serializer):
    after = drf.IntegerField(required=False, default=0, min_value=0, max_value=MAX_ID,
                             help_text="the last id of the previous page (cursor)")
    limit = drf.IntegerField(required=False, default=100, min_value=1, max_value=1000)
    link_id = drf.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    clicked = drf.BooleanField(required=False, default=False)


class RecipientPage(drf.Serializer):
    next_after = drf.IntegerField(allow_null=True)
    results = RecipientOut(many=True)


class ClickPage(drf.Serializer):
    next_after = drf.IntegerField(allow_null=True)
    results = ClickOut(many=True)


def _valid(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class OverviewView(TrackingBase):
    @extend_schema(summary="Opens and clicks of a campaign, people and machines apart (V28 3.1)",
                   responses={200: TrackOverviewOut, **ERRORS})
    def get(self, request, campaign_id: int):
        campaign = self.campaign(campaign_id)
        track = reports.track_of(campaign)
        sent = reports.send_figures(campaign)
        breakdown = dict(track.breakdown)
        reasons = breakdown.pop("machine", {})
        return Response(TrackOverviewOut({
            "track_id": track.pk, "campaign_id": campaign.pk, "ident": campaign.sn, "queued": sent.queued,
            "sent": sent.sent, "failed": sent.failed,
            "human": {"open_unique": track.open_unique, "open_total": track.open_total,
                      "open_first": track.open_first, "open_last": track.open_last,
                      "click_unique": track.click_unique, "click_total": track.click_total,
                      "click_first": track.click_first, "click_last": track.click_last},
            "machine": {"open_unique": track.machine_open_unique, "open_total": track.machine_open_total,
                        "click_unique": track.machine_click_unique, "click_total": track.machine_click_total,
                        "reasons": reasons},
            "open_rate": float(reports.ratio(track.open_unique, sent.sent)),
            "click_rate": float(reports.ratio(track.click_unique, sent.sent)),
            "breakdown": breakdown, "links": reports.links(campaign)}).data)


class LinksView(TrackingBase):
    @extend_schema(summary="Clicks per link (V28 3.5)", responses={200: TrackLinkOut(many=True), **ERRORS})
    def get(self, request, campaign_id: int):
        return Response(TrackLinkOut(reports.links(self.campaign(campaign_id)), many=True).data)


class RecipientsView(TrackingBase):
    @extend_schema(summary="Recipients who opened or clicked, by cursor (V28 3.2)", parameters=[TrackPageQuery],
                   responses={200: RecipientPage, **ERRORS})
    def get(self, request, campaign_id: int):
        query = _valid(TrackPageQuery, request.query_params)
        campaign = self.campaign(campaign_id)
        if query.get("link_id") is not None:
            reports.links(campaign, query["link_id"])
        rows = reports.recipient_page(campaign, query["after"], query["limit"], clicked_only=query["clicked"],
                                      link_id=query.get("link_id"))
        next_after = rows[-1].pk if len(rows) == query["limit"] else None
        return Response({"next_after": next_after, "results": RecipientOut(rows, many=True).data})


class ClicksView(TrackingBase):
    @extend_schema(summary="Clicks per recipient and link, by cursor (V28 3.3)", parameters=[TrackPageQuery],
                   responses={200: ClickPage, **ERRORS})
    def get(self, request, campaign_id: int):
        query = _valid(TrackPageQuery, request.query_params)
        campaign = self.campaign(campaign_id)
        if query.get("link_id") is not None:
            reports.links(campaign, query["link_id"])
        rows = reports.click_page(campaign, query["after"], query["limit"], query.get("link_id"))
        next_after = rows[-1].pk if len(rows) == query["limit"] else None
        return Response({"next_after": next_after, "results": ClickOut(rows, many=True).data})


def _time(dt) -> str:
    return timezone.localtime(dt).isoformat() if dt else ""


class ExportView(TrackingBase):
    @extend_schema(summary="Every recipient who opened or clicked, as CSV (V28 3.4)", parameters=[TrackPageQuery],
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR), **ERRORS})
    def get(self, request, campaign_id: int):
        query = _valid(TrackPageQuery, request.query_params)
        campaign = self.campaign(campaign_id)
        if query.get("link_id") is not None:
            reports.links(campaign, query["link_id"])

        def lines():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(USER_FIELDS)
            for r in reports.recipients(campaign, clicked_only=query["clicked"], link_id=query.get("link_id")):
                writer.writerow([r.pk, r.email, r.browser, r.os, r.device, r.addr_first, r.ip_first or "",
                                 r.ip_last or "", r.addr_last, r.open_total, r.click_total, _time(r.open_first),
                                 _time(r.open_last), _time(r.click_first), _time(r.click_last),
                                 r.machine_open_total, r.machine_click_total, r.machine_reason])
                if buffer.tell() > 65536:
                    yield buffer.getvalue().encode()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue().encode()

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="tracking-{campaign.pk}.csv"'
        return response


# --- tracking domains -------------------------------------------------------------------------

class TrackDomainOut(drf.Serializer):
    id = drf.IntegerField()
    customer_id = drf.IntegerField(source="account_id")
    domain = drf.CharField()
    is_default = drf.BooleanField()
    is_cname = drf.BooleanField(help_text="its CNAME points at the hub's tracking host (HUB_TRACK_CNAME_TARGET)")
    checked_at = drf.DateTimeField(allow_null=True)
    created_at = drf.DateTimeField()


class TrackDomainIn(drf.Serializer):
    domain = drf.CharField(max_length=300)
    is_default = drf.BooleanField(required=False, default=False)


class TrackDomainPatch(drf.Serializer):
    is_default = drf.BooleanField()


class DomainsView(TrackingBase):
    tag = "tracking domains"

    @extend_schema(summary="Tracking domains of the account (V28 3.6)", responses={200: TrackDomainOut(many=True), **ERRORS})
    def get(self, request):
        return Response(TrackDomainOut(trackdomains.list_domains(self.account), many=True).data)

    @extend_schema(summary="Add a tracking domain; its CNAME must already be right (V28 3.7)", request=TrackDomainIn,
                   responses={201: TrackDomainOut, **ERRORS})
    def post(self, request):
        data = _valid(TrackDomainIn, request.data)
        return Response(TrackDomainOut(trackdomains.edit_domain(self.account, data["domain"], data["is_default"])).data,
                        status=201)


class DomainView(TrackingBase):
    tag = "tracking domains"

    @extend_schema(summary="One tracking domain", responses={200: TrackDomainOut, **ERRORS})
    def get(self, request, domain_id: int):
        return Response(TrackDomainOut(trackdomains.get_domain_by_id(self.account, domain_id)).data)

    @extend_schema(summary="Make it the default or not (V28 3.7)", request=TrackDomainPatch,
                   responses={200: TrackDomainOut, **ERRORS})
    def patch(self, request, domain_id: int):
        data = _valid(TrackDomainPatch, request.data)
        domain = trackdomains.get_domain_by_id(self.account, domain_id)
        return Response(TrackDomainOut(trackdomains.edit_domain(self.account, domain.domain, data["is_default"])).data)

    @extend_schema(summary="Delete a tracking domain (V28 3.8)", responses={204: None, **ERRORS})
    def delete(self, request, domain_id: int):
        domain = trackdomains.get_domain_by_id(self.account, domain_id)
        trackdomains.delete_domains(self.account, domain.domain)
        return no_content()


class DomainCheckView(TrackingBase):
    tag = "tracking domains"

    @extend_schema(summary="Check the CNAME again", request=None, responses={200: TrackDomainOut, **ERRORS})
    def post(self, request, domain_id: int):
        return Response(TrackDomainOut(trackdomains.recheck(trackdomains.get_domain_by_id(self.account, domain_id))).data)
