"""Native API: file imports (upload, status, log). The job runs on the django-q2 queue."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers as drf
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from hub.contacts import services

from . import serializers as s
from .base import ApiError, NativeView
from .errors import ERRORS

LOG_DEFAULT = 20
LOG_MAX = 100


class ListImportView(NativeView):
    tag = "imports"
    upload = True
    parser_classes = (MultiPartParser,)

    @extend_schema(summary="Upload a file to import into the list (V28 4.8.3)", request={"multipart/form-data": s.ImportIn},
                   responses={202: s.ImportOut, **ERRORS})
    def post(self, request, list_id: int):
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError("invalid", _('file is required (multipart/form-data field "file")'), 400)
        job = services.start_import(self.account, list_id, upload, upload.name or "upload")
        return Response(s.ImportOut(job).data, status=202)


class LogQuery(drf.Serializer):
    limit = drf.IntegerField(required=False, default=LOG_DEFAULT, min_value=1, max_value=LOG_MAX)


class ImportsView(NativeView):
    tag = "imports"

    @extend_schema(summary="The import log, newest first (V28 4.13)",
                   parameters=[OpenApiParameter("limit", OpenApiTypes.INT, description="1..100, default 20")],
                   responses={200: s.ImportOut(many=True), **ERRORS})
    def get(self, request):
        serializer = LogQuery(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        jobs = services.imports(self.account)[:serializer.validated_data["limit"]]
        return Response(s.ImportOut(jobs, many=True).data)


class ImportView(NativeView):
    tag = "imports"

    @extend_schema(summary="One import's status and counts (V28 4.8.4)", responses={200: s.ImportOut, **ERRORS})
    def get(self, request, job_id: int):
        return Response(s.ImportOut(services.get_import(self.account, job_id)).data)
