"""The error shape in the OpenAPI schema."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    "Error",
    fields={
        "error": inline_serializer("ErrorBody", fields={
            "code": serializers.CharField(help_text="short identifier, e.g. not_found, invalid, auth_error"),
            "message": serializers.CharField(help_text="human-readable, in the request's language"),
            "details": serializers.DictField(required=False, help_text="per-field messages (code `invalid`)"),
        }),
    },
)

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="invalid input"),
    401: OpenApiResponse(ErrorSerializer, description="missing or wrong credentials"),
    403: OpenApiResponse(ErrorSerializer, description="app or account disabled, IP refused, not a manager"),
    404: OpenApiResponse(ErrorSerializer, description="not found (also another account's ids)"),
}
