"""Native API: sending domains and mailboxes (V28 chapter 7). Parsing and answering only;
every rule (and tenancy) is in hub.domains."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf
from rest_framework.response import Response

from hub.domains import mailboxes, services
from hub.domains.services import DomainError
from hub.models import App

from .base import ApiError, NativeView, no_content
from .errors import ERRORS


class RecordOut(drf.Serializer):
    type = drf.CharField()
    name = drf.CharField()
    value = drf.CharField()
    ok = drf.BooleanField(allow_null=True, help_text="seen in DNS at the last check (null: not checked)")
    note = drf.CharField()


class DomainOut(drf.Serializer):
    id = drf.IntegerField()
    customer_id = drf.IntegerField(source="account_id")
    name = drf.CharField()
    status = drf.CharField(help_text="pending, verified, or broken (verified once, records broken since)")
    spf_ok = drf.BooleanField()
    mx_ok = drf.BooleanField()
    dkim_ok = drf.BooleanField()
    check_detail = drf.CharField()
    checked_at = drf.DateTimeField(allow_null=True)
    verified_at = drf.DateTimeField(allow_null=True)
    broken_since = drf.DateTimeField(allow_null=True)
    created_at = drf.DateTimeField()


class DomainDetailOut(DomainOut):
    records = drf.SerializerMethodField()

    def get_records(self, obj) -> list[dict]:
        return RecordOut(services.records(obj), many=True).data


class DomainIn(drf.Serializer):
    name = drf.CharField(max_length=300)


class CheckIn(drf.Serializer):
    domains = drf.ListField(child=drf.CharField(max_length=300), min_length=1, max_length=100)


class CheckRowOut(drf.Serializer):
    customer_id = drf.IntegerField()
    domain_id = drf.IntegerField()
    val = drf.CharField()
    status = drf.IntegerField(help_text="3 added and verified, 2 added not verified, 1 not added but verified, "
                                        "0 neither (V28 7.3)")
    info = drf.CharField()
    dkim = drf.CharField()


class MailboxOut(drf.Serializer):
    id = drf.IntegerField()
    domain = drf.CharField(source="domain.name")
    name = drf.CharField(source="local_part")
    address = drf.CharField()
    enabled = drf.BooleanField()
    app_id = drf.IntegerField()
    created_at = drf.DateTimeField()


class MailboxIn(drf.Serializer):
    name = drf.CharField(max_length=64, help_text="the local part; the address is name@domain")
    password = drf.CharField(max_length=128, trim_whitespace=False)
    enabled = drf.BooleanField(required=False, default=True)
    app_id = drf.IntegerField(required=False, help_text="the account's app its mail goes through "
                                                        "(default: the account's oldest enabled app)")


class MailboxPatch(drf.Serializer):
    password = drf.CharField(max_length=128, required=False, trim_whitespace=False)
    enabled = drf.BooleanField(required=False)
    app_id = drf.IntegerField(required=False)


class MailboxPage(drf.Serializer):
    total = drf.IntegerField()
    results = MailboxOut(many=True)


class PageQuery(drf.Serializer):
    page = drf.IntegerField(required=False, default=1, min_value=1, max_value=10**9)
    limit = drf.IntegerField(required=False, default=30, min_value=1, max_value=500)


def _valid(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class DomainsBase(NativeView):
    tag = "domains"

    def handle_exception(self, exc):
        if isinstance(exc, DomainError):
            status = 404 if exc.http_status == 404 else exc.http_status
            code = "not_found" if exc.http_status == 404 else exc.code
            exc = ApiError(code, exc.message, 409 if code in ("domain_exists", "mailbox_exists") else status)
        return super().handle_exception(exc)

    def app_of_account(self, app_id: int | None) -> App | None:
        if app_id is None:
            return None
        app = App.objects.filter(pk=app_id, account=self.account).first()
        if app is None:
            raise ApiError("not_found", _("app not found"), 404)
        return app


class DomainsView(DomainsBase):
    @extend_schema(summary="Domains of the account (V28 7.1)", responses={200: DomainOut(many=True), **ERRORS})
    def get(self, request):
        return Response(DomainOut(services.list_domains(self.account), many=True).data)

    @extend_schema(summary="Add a domain and check its DNS once (V28 7.2 / 7.4)", request=DomainIn,
                   responses={201: DomainDetailOut, **ERRORS})
    def post(self, request):
        data = _valid(DomainIn, request.data)
        return Response(DomainDetailOut(services.add_domain(self.account, data["name"])).data, status=201)


class DomainView(DomainsBase):
    @extend_schema(summary="One domain with the records to publish", responses={200: DomainDetailOut, **ERRORS})
    def get(self, request, domain_id: int):
        return Response(DomainDetailOut(services.get_domain_by_id(self.account, domain_id)).data)

    @extend_schema(summary="Delete a domain (V28 7.5 / 7.6: a verified domain only by the manager)",
                   responses={204: None, **ERRORS})
    def delete(self, request, domain_id: int):
        domain = services.get_domain_by_id(self.account, domain_id)
        services.delete_domain(self.account, domain.name, as_manager=self.account.pk != request.auth.account_id)
        return no_content()


class DomainCheckView(DomainsBase):
    @extend_schema(operation_id="domain_check", summary="Check the domain's DNS now", request=None, responses={200: DomainDetailOut, **ERRORS})
    def post(self, request, domain_id: int):
        return Response(DomainDetailOut(services.run_check(services.get_domain_by_id(self.account, domain_id))).data)


class DomainsCheckView(DomainsBase):
    @extend_schema(operation_id="domains_check_names", summary="Check several names (V28 7.3)", request=CheckIn, responses={200: CheckRowOut(many=True),
                                                                                       **ERRORS})
    def post(self, request):
        data = _valid(CheckIn, request.data)
        names = services.parse_domain_list(",".join(data["domains"]))
        return Response(CheckRowOut(services.check_domains(self.account, names), many=True).data)


class DomainMailboxesView(DomainsBase):
    tag = "mailboxes"

    @extend_schema(summary="Mailboxes of a domain, paged (V28 7.7)", parameters=[PageQuery],
                   responses={200: MailboxPage, **ERRORS})
    def get(self, request, domain_id: int):
        query = _valid(PageQuery, request.query_params)
        domain = services.get_domain_by_id(self.account, domain_id)
        total, rows = mailboxes.list_mailboxes(self.account, domain.name, query["page"], query["limit"])
        return Response({"total": total, "results": MailboxOut(rows, many=True).data})

    @extend_schema(summary="Add a mailbox (V28 7.8)", request=MailboxIn, responses={201: MailboxOut, **ERRORS})
    def post(self, request, domain_id: int):
        data = _valid(MailboxIn, request.data)
        domain = services.get_domain_by_id(self.account, domain_id)
        box = mailboxes.add_mailbox(self.account, f"{data['name']}@{domain.name}", data["password"],
                                    app=self.app_of_account(data.get("app_id")), enabled=data["enabled"])
        return Response(MailboxOut(box).data, status=201)


class MailboxView(DomainsBase):
    tag = "mailboxes"

    @extend_schema(summary="One mailbox", responses={200: MailboxOut, **ERRORS})
    def get(self, request, mailbox_id: int):
        return Response(MailboxOut(mailboxes.get_mailbox_by_id(self.account, mailbox_id)).data)

    @extend_schema(summary="Change password, status or app (V28 7.10)", request=MailboxPatch,
                   responses={200: MailboxOut, **ERRORS})
    def patch(self, request, mailbox_id: int):
        data = _valid(MailboxPatch, request.data)
        box = mailboxes.get_mailbox_by_id(self.account, mailbox_id)
        box = mailboxes.edit_mailbox(self.account, box.address, password=data.get("password"),
                                     enabled=data.get("enabled"), app=self.app_of_account(data.get("app_id")))
        return Response(MailboxOut(box).data)

    @extend_schema(summary="Delete a mailbox (V28 7.9)", responses={204: None, **ERRORS})
    def delete(self, request, mailbox_id: int):
        box = mailboxes.get_mailbox_by_id(self.account, mailbox_id)
        mailboxes.delete_mailbox(self.account, box.address)
        return no_content()
