"""Native API: lists, contacts, batch add, subscribe/unsubscribe, unsubscribed export.
Parsing and answering only; every rule (and tenancy) is in hub.contacts.services."""

from __future__ import annotations

import csv
import io

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers as drf
from rest_framework.response import Response

from hub.contacts import services

from . import serializers as s
from .base import ApiError, NativeView, no_content
from .errors import ERRORS

PAGE_DEFAULT = 50


def _valid(serializer_class, data, **kwargs):
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer


def _strict(records: list[dict]) -> None:
    """Refuse the whole batch when any record is invalid (nothing written), with every
    reason, so a client fixes its data and sends again."""
    errors = services.invalid_records(records)
    if errors:
        raise ApiError("invalid_records", "; ".join(errors[:50]), 400)


def _batch(result: services.BatchResult) -> dict:
    return {"added": result.added, "invalid": result.invalid, "duplicate": result.duplicate,
            "errors": result.errors[:200]}


class ListsView(NativeView):
    tag = "lists"

    @extend_schema(summary="All contact lists of the account (V28 4.1)", responses={200: s.ListOut(many=True), **ERRORS})
    def get(self, request):
        return Response(s.ListOut(services.lists(self.account), many=True).data)

    @extend_schema(summary="Create a list (V28 4.3)", request=s.ListIn, responses={201: s.ListOut, **ERRORS})
    def post(self, request):
        data = _valid(s.ListIn, request.data).validated_data
        ml = services.create_list(self.account, data["name"], data["description"], enabled=data["enabled"],
                                  double_opt_in=data["double_opt_in"])
        return Response(s.ListOut(ml).data, status=201)


class ListView(NativeView):
    tag = "lists"

    @extend_schema(summary="One list (V28 4.2)", responses={200: s.ListOut, **ERRORS})
    def get(self, request, list_id: int):
        return Response(s.ListOut(services.get_list(self.account, list_id)).data)

    @extend_schema(summary="Change a list (V28 4.4)", request=s.ListPatch, responses={200: s.ListOut, **ERRORS})
    def patch(self, request, list_id: int):
        data = _valid(s.ListPatch, request.data).validated_data
        ml = services.update_list(self.account, list_id, name=data.get("name"), description=data.get("description"),
                                  enabled=data.get("enabled"), double_opt_in=data.get("double_opt_in"))
        return Response(s.ListOut(ml).data)

    @extend_schema(summary="Delete a list and its contacts (V28 4.5)", responses={204: None, **ERRORS})
    def delete(self, request, list_id: int):
        services.delete_list(self.account, list_id)
        return no_content()


class EmptyOut(drf.Serializer):
    removed = drf.IntegerField()


class ListEmptyView(NativeView):
    tag = "lists"

    @extend_schema(summary="Remove every contact of a list (V28 4.10)", request=None,
                   responses={200: EmptyOut, **ERRORS})
    def post(self, request, list_id: int):
        return Response({"removed": services.empty_list(self.account, list_id)})


class ListContactsView(NativeView):
    tag = "contacts"

    @extend_schema(
        summary="Contacts of a list, by id, with cursor paging (V28 4.7)",
        parameters=[
            OpenApiParameter("after_id", OpenApiTypes.INT, description="cursor: contacts with a greater id"),
            OpenApiParameter("q", OpenApiTypes.STR, description="part of the address or the name"),
            OpenApiParameter("email", OpenApiTypes.STR, description="one address"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="page size, 1..1000, default 50"),
        ],
        responses={200: s.ContactPage, **ERRORS},
    )
    def get(self, request, list_id: int):
        query = _valid(PageQuery, request.query_params).validated_data
        total, rows = services.search_contacts(self.account, list_id, keyword=query["q"], email=query["email"],
                                               after_id=query["after_id"], limit=query["limit"])
        next_after = rows[-1].pk if len(rows) == query["limit"] else None
        return Response({"total": total, "next_after_id": next_after, "results": s.ContactOut(rows, many=True).data})

    @extend_schema(summary="Add one contact (V28 4.8.1)", request=s.ContactIn, responses={201: s.ContactOut, **ERRORS})
    def post(self, request, list_id: int):
        serializer = _valid(s.ContactIn, request.data)
        contact = services.add_contact(self.account, list_id, serializer.validated_data["email"],
                                       **serializer.fields_for_service())
        return Response(s.ContactOut(contact).data, status=201)


class PageQuery(drf.Serializer):
    after_id = drf.IntegerField(required=False, default=0, min_value=0, max_value=2**63 - 1)
    q = s.Text(required=False, default="", max_length=200)
    email = s.Text(required=False, default="", max_length=254)
    limit = drf.IntegerField(required=False, default=PAGE_DEFAULT, min_value=1, max_value=1000)


class ListBatchView(NativeView):
    tag = "contacts"

    @extend_schema(summary="Add up to 500 contacts (V28 4.8.2)", request=s.BatchIn, responses={200: s.BatchOut, **ERRORS})
    def post(self, request, list_id: int):
        data = _valid(s.BatchIn, request.data).validated_data
        services.get_list(self.account, list_id)  # "not found" before any format complaint
        if data.get("contacts"):
            records = [{k: (v.isoformat() if k == "birthday" and v else v) for k, v in c.items()
                        if v is not None} for c in data["contacts"]]
        else:
            records = services.parse_batch(data["text"], data["separator"] or "\n")
        if not records:
            raise ApiError("invalid", _("no records"), 400)
        if len(records) > settings.HUB_CONTACTS_BATCH_MAX:
            raise ApiError("too_many_records", _("at most %(limit)s records per call; use an import for more")
                           % {"limit": settings.HUB_CONTACTS_BATCH_MAX}, 400)
        if not data["skip_invalid"]:
            _strict(records)
        return Response(_batch(services.add_contacts(self.account, list_id, records)))


class ContactView(NativeView):
    tag = "contacts"

    @extend_schema(summary="One contact", responses={200: s.ContactOut, **ERRORS})
    def get(self, request, contact_id: int):
        return Response(s.ContactOut(services.get_contact(self.account, contact_id)).data)

    @extend_schema(summary="Delete a contact (V28 4.9)", responses={204: None, **ERRORS})
    def delete(self, request, contact_id: int):
        services.delete_contact(self.account, contact_id)
        return no_content()


class SubscribeView(NativeView):
    tag = "subscriptions"

    @extend_schema(summary="Subscribe addresses (V28 4.11)", request=s.SubscribeIn, responses={200: s.BatchOut, **ERRORS})
    def post(self, request, list_id: int):
        data = _valid(s.SubscribeIn, request.data).validated_data
        if data.get("entries"):
            entries = [(e["email"], e["name"]) for e in data["entries"]]
        else:
            entries = services.parse_subscribe(data["text"])
        if len(entries) > settings.HUB_CONTACTS_BATCH_MAX:
            raise ApiError("too_many_records", _("at most %(limit)s addresses per call")
                           % {"limit": settings.HUB_CONTACTS_BATCH_MAX}, 400)
        return Response(_batch(services.subscribe(self.account, list_id, entries)))


class UnsubscribeView(NativeView):
    tag = "subscriptions"

    @extend_schema(summary="Unsubscribe addresses (V28 4.12)", request=s.UnsubscribeIn,
                   responses={200: s.BatchOut, **ERRORS})
    def post(self, request, list_id: int):
        data = _valid(s.UnsubscribeIn, request.data).validated_data
        emails = data.get("emails") or services.parse_unsubscribe(data["text"])
        if len(emails) > settings.HUB_CONTACTS_BATCH_MAX:
            raise ApiError("too_many_records", _("at most %(limit)s addresses per call")
                           % {"limit": settings.HUB_CONTACTS_BATCH_MAX}, 400)
        return Response(_batch(services.unsubscribe(self.account, list_id, emails)))


class ExportQuery(drf.Serializer):
    date_from = drf.DateField(required=False)
    date_to = drf.DateField(required=False)


class UnsubscribedExportView(NativeView):
    tag = "subscriptions"

    @extend_schema(
        summary="Unsubscribed addresses as CSV, streamed (V28 4.6)",
        parameters=[OpenApiParameter("date_from", OpenApiTypes.DATE), OpenApiParameter("date_to", OpenApiTypes.DATE)],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="unsubscribed_at,email"),
                   **ERRORS},
    )
    def get(self, request, list_id: int):
        query = _valid(ExportQuery, request.query_params).validated_data
        # The list and the dates are checked here, before the answer starts.
        rows = services.unsubscribed_contacts(self.account, list_id, query.get("date_from"), query.get("date_to"))

        def lines():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(["unsubscribed_at", "email"])
            for contact in rows:
                writer.writerow([timezone.localtime(contact.unsubscribed_at).isoformat(), contact.email])
                if buffer.tell() > 64 * 1024:
                    yield buffer.getvalue().encode()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue().encode()

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="unsubscribed-{int(list_id)}.csv"'
        return response
