"""GET /api/v1/account (who am I, with the service) and GET /api/v1/account/service."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.accounts import customer_info, service_info

from .base import NativeView
from .errors import ERRORS


class ServiceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    service_status = serializers.ChoiceField(choices=["enabled", "disabled"])
    service_type = serializers.ChoiceField(choices=["all", "day", "unlimited"],
                                           help_text="all: total quota; day: daily quota; unlimited: no quota")
    send_type = serializers.ChoiceField(choices=["remote", "local"])
    beginning_date = serializers.CharField(help_text="YYYY-MM-DD, empty when not set")
    expiration_date = serializers.CharField(help_text="YYYY-MM-DD, empty when not set")
    qty_available = serializers.IntegerField(help_text="-1 when unlimited")
    qty_buytotal = serializers.IntegerField(help_text="-1 when unlimited")


class AccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    company = serializers.CharField(allow_blank=True)
    contact = serializers.CharField(allow_blank=True)
    phone = serializers.CharField(allow_blank=True)
    mobile = serializers.CharField(allow_blank=True)
    email = serializers.CharField(allow_blank=True)
    im = serializers.CharField(allow_blank=True)
    address = serializers.CharField(allow_blank=True)
    is_manager = serializers.BooleanField()
    service = ServiceSerializer()


class AccountView(NativeView):
    tag = "account"

    @extend_schema(summary="The acting account (V28 1.1) with its service (V28 1.2)",
                   responses={200: AccountSerializer, **ERRORS})
    def get(self, request):
        account = self.account
        return Response({**customer_info(account), "is_manager": account.is_manager,
                         "service": service_info(account)})


class ServiceView(NativeView):
    tag = "account"

    @extend_schema(summary="The acting account's service and quota (V28 1.2)",
                   responses={200: ServiceSerializer, **ERRORS})
    def get(self, request):
        return Response(service_info(self.account))
