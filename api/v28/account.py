"""V28 chapter 1: `account.php?do=customer-info` (1.1) and `do=service-info` (1.2)."""

from __future__ import annotations

from django.http import HttpResponse

from api.accounts import customer_info, service_info

from .core import Call, action, xml_response
from .xml import el


@action("account", "customer-info")
def customer(call: Call) -> HttpResponse:
    fields = customer_info(call.account)
    return xml_response(el("customer", *(el(name, value) for name, value in fields.items())))


@action("account", "service-info")
def service(call: Call) -> HttpResponse:
    fields = service_info(call.account)
    return xml_response(el("service", *(el(name, value) for name, value in fields.items())))
