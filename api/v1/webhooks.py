"""Native API: event webhooks (endpoints, their delivery log, resend). Parsing and
answering only; every rule (and tenancy) is in hub.webhooks.services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf
from rest_framework.response import Response

from hub.webhooks import services
from hub.webhooks.models import KINDS, Event
from hub.webhooks.services import WebhookError

from .base import ApiError, NativeView, no_content
from .errors import ERRORS
from .serializers import Text


class EndpointOut(drf.Serializer):
    id = drf.IntegerField()
    customer_id = drf.IntegerField(source="account_id")
    url = drf.CharField()
    description = drf.CharField()
    events = drf.ListField(child=drf.CharField(), source="kind_list")
    enabled = drf.BooleanField()
    failures = drf.IntegerField(help_text="consecutive failed POSTs")
    paused_until = drf.DateTimeField(source="retry_at", allow_null=True,
                                     help_text="after a failed POST, not tried before this time")
    last_success_at = drf.DateTimeField(allow_null=True)
    last_failure_at = drf.DateTimeField(allow_null=True)
    created_at = drf.DateTimeField()


class EndpointWithSecret(EndpointOut):
    secret = drf.CharField(help_text="shown only here: on creation and rotation")


class EndpointIn(drf.Serializer):
    url = Text(max_length=2000, allow_blank=False)
    events = drf.ListField(child=drf.ChoiceField(choices=KINDS), min_length=1, max_length=len(KINDS),
                           required=False, default=list(KINDS), help_text="default: every kind")
    description = Text(max_length=200, required=False, default="")
    enabled = drf.BooleanField(required=False, default=True)
    secret = drf.CharField(max_length=200, required=False, allow_blank=True, trim_whitespace=False,
                           help_text="16..200 printable ASCII characters; default: generated")


class EndpointPatch(drf.Serializer):
    url = Text(max_length=2000, allow_blank=False, required=False)
    events = drf.ListField(child=drf.ChoiceField(choices=KINDS), min_length=1, max_length=len(KINDS),
                           required=False)
    description = Text(max_length=200, required=False)
    enabled = drf.BooleanField(required=False)


class SecretIn(drf.Serializer):
    secret = drf.CharField(max_length=200, required=False, allow_blank=True, trim_whitespace=False)


class AttemptOut(drf.Serializer):
    id = drf.IntegerField()
    delivery_id = drf.CharField()
    started_at = drf.DateTimeField()
    duration_ms = drf.IntegerField()
    event_count = drf.IntegerField()
    ok = drf.BooleanField()
    status_code = drf.IntegerField(allow_null=True)
    response = drf.CharField(help_text="the answer's first 1000 characters")
    error = drf.CharField()


class EventOut(drf.Serializer):
    id = drf.IntegerField()
    type = drf.CharField(source="kind")
    email = drf.CharField()
    occurred_at = drf.DateTimeField()
    app_id = drf.IntegerField(allow_null=True)
    log_id = drf.IntegerField(allow_null=True)
    campaign_id = drf.IntegerField(allow_null=True)
    contact_id = drf.IntegerField(allow_null=True)
    data = drf.DictField()
    status = drf.CharField(help_text="pending, sending, delivered or failed")
    attempts = drf.IntegerField()
    next_attempt_at = drf.DateTimeField(allow_null=True)
    delivered_at = drf.DateTimeField(allow_null=True)
    last_attempt = AttemptOut(allow_null=True)


class LogQuery(drf.Serializer):
    status = drf.ChoiceField(choices=Event.Status.values, required=False, allow_blank=True, default="")
    before_id = drf.IntegerField(required=False, default=0, min_value=0, help_text="cursor: ids below this one")
    limit = drf.IntegerField(required=False, default=50, min_value=1, max_value=500)


class ResendIn(drf.Serializer):
    event_ids = drf.ListField(child=drf.IntegerField(min_value=1), min_length=1, max_length=services.MAX_RESEND)


class ResendOut(drf.Serializer):
    queued = drf.IntegerField()


def _valid(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _with_secret(created: services.Created) -> dict:
    return {**EndpointOut(created.endpoint).data, "secret": created.secret}


class WebhooksBase(NativeView):
    tag = "webhooks"

    def handle_exception(self, exc):
        if isinstance(exc, WebhookError):
            exc = ApiError(exc.code, exc.message, exc.http_status)
        return super().handle_exception(exc)


class WebhooksView(WebhooksBase):
    @extend_schema(summary="The account's webhooks", responses={200: EndpointOut(many=True), **ERRORS})
    def get(self, request):
        return Response(EndpointOut(services.list_endpoints(self.account), many=True).data)

    @extend_schema(summary="Add a webhook (the answer has its signing secret: the only time it is shown)",
                   request=EndpointIn, responses={201: EndpointWithSecret, **ERRORS})
    def post(self, request):
        data = _valid(EndpointIn, request.data)
        created = services.create_endpoint(self.account, data["url"], data["events"], data["description"],
                                           data["enabled"], data.get("secret") or None)
        return Response(_with_secret(created), status=201)


class WebhookView(WebhooksBase):
    @extend_schema(summary="One webhook", responses={200: EndpointOut, **ERRORS})
    def get(self, request, webhook_id: int):
        return Response(EndpointOut(services.get_endpoint(self.account, webhook_id)).data)

    @extend_schema(summary="Change URL, events, description or enabled", request=EndpointPatch,
                   responses={200: EndpointOut, **ERRORS})
    def patch(self, request, webhook_id: int):
        data = _valid(EndpointPatch, request.data)
        endpoint = services.edit_endpoint(self.account, webhook_id, url=data.get("url"), kinds=data.get("events"),
                                          description=data.get("description"), enabled=data.get("enabled"))
        return Response(EndpointOut(endpoint).data)

    @extend_schema(summary="Delete a webhook with its waiting events and log", responses={204: None, **ERRORS})
    def delete(self, request, webhook_id: int):
        services.delete_endpoint(self.account, webhook_id)
        return no_content()


class SecretView(WebhooksBase):
    @extend_schema(summary="Replace the signing secret (given, or generated)", request=SecretIn,
                   responses={200: EndpointWithSecret, **ERRORS})
    def post(self, request, webhook_id: int):
        data = _valid(SecretIn, request.data)
        return Response(_with_secret(services.rotate_secret(self.account, webhook_id, data.get("secret") or None)))


class EventsView(WebhooksBase):
    @extend_schema(summary="The delivery log: the webhook's events, newest first, by cursor",
                   parameters=[LogQuery], responses={200: EventOut(many=True), **ERRORS})
    def get(self, request, webhook_id: int):
        query = _valid(LogQuery, request.query_params)
        rows = services.events_of(self.account, webhook_id, query["status"], query["before_id"], query["limit"])
        return Response(EventOut(rows, many=True).data)


class AttemptsView(WebhooksBase):
    @extend_schema(summary="Every POST made to the webhook, newest first, by cursor", parameters=[LogQuery],
                   responses={200: AttemptOut(many=True), **ERRORS})
    def get(self, request, webhook_id: int):
        query = _valid(LogQuery, request.query_params)
        rows = services.attempts_of(self.account, webhook_id, query["before_id"], query["limit"])
        return Response(AttemptOut(rows, many=True).data)


class ResendView(WebhooksBase):
    @extend_schema(summary="Queue events of this webhook again (same ids; all or nothing)", request=ResendIn,
                   responses={200: ResendOut, **ERRORS})
    def post(self, request, webhook_id: int):
        data = _valid(ResendIn, request.data)
        return Response({"queued": services.resend(self.account, webhook_id, data["event_ids"])})
