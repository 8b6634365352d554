"""Native API: campaigns (V28 chapter 6 "tasks"). Parsing and answering only; every rule,
the state table and tenancy are in hub.campaigns.services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf
from rest_framework.response import Response

from hub.campaigns import services
from hub.campaigns.models import MAX_HOUR_SPEED, State

from .base import NativeView, error_body, exception_handler, no_content
from .errors import ERRORS

MAX_ID = 2**63 - 1


def _exception_handler(exc, context):
    if isinstance(exc, services.CampaignError):
        code = "not_found" if exc.code == "not_exist" else exc.code
        return Response(error_body(code, exc.message), status=exc.http_status)
    return exception_handler(exc, context)


class CampaignsBase(NativeView):
    tag = "campaigns"

    def get_exception_handler(self):
        return _exception_handler


class CampaignIn(drf.Serializer):
    name = drf.CharField(required=False, allow_blank=True, max_length=200)
    template_ids = drf.ListField(child=drf.IntegerField(min_value=1, max_value=MAX_ID), max_length=services.MAX_TEMPLATES,
                                 help_text="recipients are split evenly over them, round-robin")
    list_ids = drf.ListField(child=drf.IntegerField(min_value=1, max_value=MAX_ID), max_length=services.MAX_LISTS,
                             help_text="an address in several lists gets one mail")
    send_domain = drf.CharField(required=False, max_length=255, help_text='a domain, or "all"')
    send_account = drf.CharField(required=False, max_length=254, help_text='one sender address, or "all"')
    send_fullname = drf.CharField(required=False, allow_blank=True, max_length=200)
    send_replyto = drf.CharField(required=False, allow_blank=True, max_length=254)
    send_qty_start = drf.IntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="1-based, inclusive")
    send_qty = drf.IntegerField(required=False, min_value=0, max_value=MAX_ID, help_text="inclusive end position, 0 = to the end")
    send_time = drf.DateTimeField(required=False, help_text="default: now")
    subs_link = drf.BooleanField(required=False)
    track_status = drf.IntegerField(required=False, min_value=0, max_value=2)
    track_domain = drf.CharField(required=False, allow_blank=True, max_length=255)
    hour_speed = drf.IntegerField(required=False, min_value=0, max_value=MAX_HOUR_SPEED, help_text="0 = no limit")
    is_need_receipt = drf.BooleanField(required=False)
    is_delay = drf.BooleanField(required=False)
    state = drf.ChoiceField(required=False, choices=[0, 1, 2, -1, -2, -3],
                            help_text="1 (default) send at send_time, 2 now, -1 on hold")


class CampaignPatch(CampaignIn):
    template_ids = drf.ListField(child=drf.IntegerField(min_value=1, max_value=MAX_ID), required=False,
                                 max_length=services.MAX_TEMPLATES)
    list_ids = drf.ListField(child=drf.IntegerField(min_value=1, max_value=MAX_ID), required=False, max_length=services.MAX_LISTS)
    state = drf.ChoiceField(required=False, choices=[c.value for c in State])


class CampaignOut(drf.Serializer):
    id = drf.IntegerField()
    sn = drf.CharField()
    name = drf.CharField()
    template_ids = drf.ListField(child=drf.IntegerField())
    list_ids = drf.ListField(child=drf.IntegerField())
    send_domain = drf.CharField()
    send_account = drf.CharField()
    send_fullname = drf.CharField()
    send_replyto = drf.CharField()
    send_qty_start = drf.IntegerField()
    send_qty = drf.IntegerField()
    send_qty_remark = drf.IntegerField(help_text="the lists' address count when the campaign was created")
    send_time = drf.DateTimeField()
    state = drf.IntegerField(help_text="V28 (a)1: 0/1 waiting, 2 sending, 3 done, -1 on hold, -2 paused, "
                                       "-3 cancelled, -4 error")
    verify_status = drf.IntegerField(help_text="0 waiting for review, 1 approved, 2 rejected")
    reason = drf.CharField()
    subs_link = drf.BooleanField()
    track_status = drf.IntegerField()
    track_domain = drf.CharField()
    hour_speed = drf.IntegerField()
    is_need_receipt = drf.BooleanField()
    is_delay = drf.BooleanField()
    created_at = drf.DateTimeField()
    time_start = drf.DateTimeField(allow_null=True)
    time_end = drf.DateTimeField(allow_null=True)


class ProgressOut(drf.Serializer):
    state = drf.IntegerField()
    contacts_read = drf.IntegerField()
    queued = drf.IntegerField()
    sent = drf.IntegerField()
    failed = drf.IntegerField()
    bounced = drf.IntegerField(help_text="of the sent, bounced afterwards (a DSN); still counted in sent")
    waiting = drf.IntegerField()
    cancelled = drf.IntegerField()
    skipped = drf.DictField(child=drf.IntegerField())
    failure_types = drf.DictField(child=drf.IntegerField())
    per_template = drf.DictField(child=drf.IntegerField())
    per_subject = drf.DictField(child=drf.IntegerField())


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _fields(data: dict) -> services.Fields:
    return services.Fields(**{k: v for k, v in data.items() if k != "state"})


class CampaignsView(CampaignsBase):
    @extend_schema(summary="The account's campaigns, newest first (V28 6.1)",
                   responses={200: CampaignOut(many=True), **ERRORS})
    def get(self, request):
        return Response(CampaignOut(services.campaigns(self.account).order_by("-id")[:500], many=True).data)

    @extend_schema(summary="Create a campaign (V28 6.2); at most 100 an hour", request=CampaignIn,
                   responses={201: CampaignOut, **ERRORS})
    def post(self, request):
        data = _valid(CampaignIn, request.data)
        state = data.pop("state", State.SCHEDULED)
        return Response(CampaignOut(services.create_campaign(self.account, _fields(data), state)).data, status=201)


class CampaignView(CampaignsBase):
    @extend_schema(summary="One campaign", responses={200: CampaignOut, **ERRORS})
    def get(self, request, campaign_id: int):
        return Response(CampaignOut(services.get_campaign(self.account, campaign_id)).data)

    @extend_schema(summary="Change a campaign (V28 6.3); who gets what is fixed once it has started",
                   request=CampaignPatch, responses={200: CampaignOut, **ERRORS})
    def patch(self, request, campaign_id: int):
        data = _valid(CampaignPatch, request.data)
        state = data.pop("state", None)
        return Response(CampaignOut(services.edit_campaign(self.account, campaign_id, _fields(data), state)).data)

    @extend_schema(summary="Delete a campaign (V28 6.4); pause or cancel a sending one first",
                   responses={204: None, **ERRORS})
    def delete(self, request, campaign_id: int):
        services.delete_campaign(self.account, campaign_id)
        return no_content()


def _control(action):
    class ControlView(CampaignsBase):
        @extend_schema(summary=f"{action.__name__.capitalize()} a campaign", request=None,
                       operation_id=f"campaigns_{action.__name__}", responses={200: CampaignOut, **ERRORS})
        def post(self, request, campaign_id: int):
            return Response(CampaignOut(action(self.account, campaign_id)).data)

    ControlView.__name__ = f"Campaign{action.__name__.capitalize()}View"
    return ControlView


PauseView, ResumeView, CancelView = (_control(a) for a in (services.pause, services.resume, services.cancel))


class ProgressView(CampaignsBase):
    @extend_schema(summary="Progress: every contact read is sent, failed, waiting, cancelled or skipped",
                   responses={200: ProgressOut, **ERRORS})
    def get(self, request, campaign_id: int):
        c = services.get_campaign(self.account, campaign_id)
        p = services.progress(c)
        return Response({"state": c.state, "contacts_read": p.total, "queued": p.queued, "sent": p.sent,
                         "failed": p.failed, "bounced": p.bounced, "waiting": p.waiting, "cancelled": p.cancelled, "skipped": p.skipped,
                         "failure_types": {str(k): v for k, v in p.failure_types.items()},
                         "per_template": c.per_template, "per_subject": c.per_subject})
