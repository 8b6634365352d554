"""Native API: templates (V28 chapter 5) and their attachments and check. Parsing and
answering only; every rule and tenancy check is in hub.mailtemplates.services.

Create and edit take JSON, or a multipart form (create only) whose `files` parts are the
attachments. `subjects` is a list, or one string `A|B` as in V28."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers as drf
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response

from hub.mailtemplates import services
from hub.mailtemplates.models import Template

from .base import ApiError, NativeView, error_body, exception_handler, no_content
from .errors import ERRORS


def _exception_handler(exc, context):
    if isinstance(exc, services.TemplateError):
        code = "not_found" if exc.code == "not_exist" else exc.code
        return Response(error_body(code, exc.message), status=exc.http_status)
    return exception_handler(exc, context)


class TemplatesBase(NativeView):
    tag = "templates"

    def get_exception_handler(self):
        return _exception_handler


class AttachmentOut(drf.Serializer):
    id = drf.IntegerField()
    filename = drf.CharField()
    content_type = drf.CharField()
    size = drf.IntegerField()


class TemplateOut(drf.Serializer):
    id = drf.IntegerField()
    account_id = drf.IntegerField()
    name = drf.CharField()
    subjects = drf.ListField(child=drf.CharField())
    html = drf.CharField()
    text = drf.CharField(help_text="empty: generated from the HTML when sent")
    encoding = drf.CharField()
    shared_with_subaccounts = drf.BooleanField()
    attachments = AttachmentOut(many=True, source="attachments.all")
    status = drf.IntegerField(source="check_status", help_text="-1 checking, 0 red (refused), 1 passed")
    colour = drf.CharField(help_text="green, yellow, red, red_pass; empty while checking")
    size_status = drf.IntegerField(help_text="-1 computing, 1 done")
    size_kb = drf.IntegerField()
    findings = drf.ListField(child=drf.DictField())
    checked_at = drf.DateTimeField(allow_null=True)
    created_at = drf.DateTimeField()
    updated_at = drf.DateTimeField()


@extend_schema_field({"oneOf": [{"type": "string", "description": "subjects separated by |"},
                              {"type": "array", "items": {"type": "string"}}]})
class SubjectsField(drf.Field):
    """A list of strings, or one string `A|B`."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, list) and all(isinstance(item, str) for item in data):
            return data
        raise drf.ValidationError(_("a list of strings or one string with | between subjects"))

    def to_representation(self, value):
        return value


class TemplateIn(drf.Serializer):
    name = drf.CharField(max_length=200)
    subjects = SubjectsField()
    html = drf.CharField(trim_whitespace=False)
    text = drf.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    encoding = drf.ChoiceField(choices=Template.Encoding.values, required=False, default="base64")
    shared_with_subaccounts = drf.BooleanField(required=False, default=False)


class TemplatePatch(drf.Serializer):
    name = drf.CharField(max_length=200, required=False)
    subjects = SubjectsField(required=False)
    html = drf.CharField(required=False, trim_whitespace=False)
    text = drf.CharField(required=False, allow_blank=True, trim_whitespace=False)
    encoding = drf.ChoiceField(choices=Template.Encoding.values, required=False)
    shared_with_subaccounts = drf.BooleanField(required=False)


class CheckOut(drf.Serializer):
    status = drf.IntegerField(source="check_status")
    colour = drf.CharField()
    size_status = drf.IntegerField()
    size_kb = drf.IntegerField()
    findings = drf.ListField(child=drf.DictField())
    checked_at = drf.DateTimeField(allow_null=True)


class DeletedOut(drf.Serializer):
    deleted = drf.IntegerField()


def _valid(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _uploads(request) -> list[services.FileIn]:
    files = []
    for upload in request.FILES.getlist("files"):
        if upload.size > settings.HUB_MAX_ATTACHMENT_BYTES:
            raise ApiError("too_large", _("%(name)s is over %(n)s bytes") % {
                "name": upload.name, "n": settings.HUB_MAX_ATTACHMENT_BYTES}, 413)
        files.append(services.FileIn(upload.name or "", upload.content_type or "", upload.read()))
    return files


class TemplatesView(TemplatesBase):
    upload = True
    parser_classes = (JSONParser, MultiPartParser)

    @extend_schema(summary="The account's templates (V28 5.4)",
                   parameters=[OpenApiParameter("include_shared", OpenApiTypes.BOOL,
                                                description="also the manager's templates shared with this account")],
                   responses={200: TemplateOut(many=True), **ERRORS})
    def get(self, request):
        shared = request.query_params.get("include_shared", "").lower() in ("1", "true", "yes")
        rows = services.usable_templates(self.account) if shared else services.templates(self.account)
        return Response(TemplateOut(rows.prefetch_related("attachments"), many=True).data)

    @extend_schema(summary="Create a template (V28 5.2); multipart `files` parts are attachments",
                   request={"application/json": TemplateIn, "multipart/form-data": TemplateIn},
                   responses={201: TemplateOut, **ERRORS})
    def post(self, request):
        data = _valid(TemplateIn, request.data)
        template = services.create_template(
            self.account, name=data["name"], subjects=data["subjects"], html=data["html"], text=data["text"],
            encoding=data["encoding"], shared=data["shared_with_subaccounts"], files=_uploads(request))
        return Response(TemplateOut(template).data, status=201)


class TemplateView(TemplatesBase):
    @extend_schema(summary="One template (V28 5.4 with tpl_id)", responses={200: TemplateOut, **ERRORS})
    def get(self, request, template_id: int):
        return Response(TemplateOut(services.owned_template(self.account, template_id)).data)

    @extend_schema(summary="Change a template (V28 5.6); only the fields sent change", request=TemplatePatch,
                   responses={200: TemplateOut, **ERRORS})
    def patch(self, request, template_id: int):
        data = _valid(TemplatePatch, request.data)
        template = services.update_template(
            self.account, template_id, name=data.get("name"), subjects=data.get("subjects"), html=data.get("html"),
            text=data.get("text"), encoding=data.get("encoding"), shared=data.get("shared_with_subaccounts"))
        return Response(TemplateOut(template).data)

    @extend_schema(summary="Delete a template (V28 5.5)", responses={204: None, **ERRORS})
    def delete(self, request, template_id: int):
        services.delete_template(self.account, template_id)
        return no_content()


class TemplateCheckView(TemplatesBase):
    @extend_schema(summary="The check's result (V28 5.3) with each finding", responses={200: CheckOut, **ERRORS})
    def get(self, request, template_id: int):
        return Response(CheckOut(services.owned_template(self.account, template_id)).data)


class AttachmentsView(TemplatesBase):
    upload = True
    parser_classes = (MultiPartParser,)

    @extend_schema(summary="Add attachments (V28 5.7): multipart `files` parts",
                   request={"multipart/form-data": {"type": "object", "properties": {
                       "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
                   responses={201: AttachmentOut(many=True), **ERRORS})
    def post(self, request, template_id: int):
        files = _uploads(request)
        if not files:
            raise ApiError("invalid", _('files is required (multipart/form-data parts named "files")'), 400)
        return Response(AttachmentOut(services.add_attachments(self.account, template_id, files), many=True).data,
                        status=201)

    @extend_schema(summary="Delete every attachment (V28 5.8 attachment_id=all)", operation_id="templates_attachments_delete_all",
                   responses={200: DeletedOut, **ERRORS})
    def delete(self, request, template_id: int):
        return Response({"deleted": services.delete_attachments(self.account, template_id, "all")})


class AttachmentView(TemplatesBase):
    @extend_schema(summary="Delete one attachment (V28 5.8)", operation_id="templates_attachment_delete", responses={200: DeletedOut, **ERRORS})
    def delete(self, request, template_id: int, attachment_id: int):
        return Response({"deleted": services.delete_attachments(self.account, template_id, str(attachment_id))})
