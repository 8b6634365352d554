"""What every native API view shares: authentication (HTTP Basic AppID:AppSecret, or the
send API's `appid`/`appsecret` body fields), the acting account (`customer_id` for a
manager, through hub.tenancy), body size caps, and one JSON error shape:

    {"error": {"code": "not_found", "message": "list not found", "details": {...}}}

`details` appears only for field validation errors (the serializer's per-field messages)."""

from __future__ import annotations

import base64
import binascii

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.access import admit_login, client_ip
from hub.contacts import services
from hub.models import Account, App, Site
from hub.refusals import Refusal
from hub.tenancy import TenancyError, acting_account

REALM = 'Basic realm="SMTP Hub API", charset="UTF-8"'
# Service refusals that are a conflict with the current state, not bad input.
CONFLICTS = {"exist": 409, "list_importing": 409}


class ApiError(exceptions.APIException):
    """A refusal with our own code. Raised before anything is written."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = http_status
        self.error_code = code


class AppUser:
    """request.user for an app: DRF wants an object with is_authenticated."""

    is_authenticated = True

    def __init__(self, app: App) -> None:
        self.app = app


class AppAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            appid, appsecret = self._basic(header)
        else:
            data = self._body(request)
            appid, appsecret = data.get("appid"), data.get("appsecret")
            if appid is None and appsecret is None:
                return None  # -> 401 not_authenticated with WWW-Authenticate
            if not isinstance(appid, (str, int)) or not isinstance(appsecret, str) or isinstance(appid, bool):
                raise exceptions.AuthenticationFailed(_("appid and appsecret must be strings"))
            appid = str(appid)
        try:
            # The site's IP blocklist, the constant-time credential check, the app's allowed IPs.
            app = admit_login(appid, appsecret, client_ip(request.META, Site.cached()))
        except Refusal as refusal:
            if refusal.http_status in (400, 401):
                raise exceptions.AuthenticationFailed(_("wrong AppID or AppSecret")) from refusal
            raise exceptions.PermissionDenied(refusal.msg) from refusal
        return AppUser(app), app

    @staticmethod
    def _basic(header: str) -> tuple[str, str]:
        scheme, _sep, token = header.partition(" ")
        if scheme.lower() != "basic":
            raise exceptions.AuthenticationFailed(_("use HTTP Basic authentication with your AppID and AppSecret"))
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise exceptions.AuthenticationFailed(_("malformed Authorization header")) from exc
        text = raw.decode("utf-8", errors="replace")
        appid, sep, appsecret = text.partition(":")
        if not sep:
            raise exceptions.AuthenticationFailed(_("malformed Authorization header"))
        return appid, appsecret

    @staticmethod
    def _body(request) -> dict:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return {}
        data = request.data  # parse errors become 400 parse_error in the handler
        return data if hasattr(data, "get") else {}

    def authenticate_header(self, request) -> str:
        return REALM


class IsApp(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, App)


CUSTOMER_ID = OpenApiParameter(
    "customer_id", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False,
    description="A manager account's app acts for this sub-account (V28 `customer_id`).")


class NativeSchema(AutoSchema):
    """Every operation takes the optional `customer_id`, and may answer our error shape."""

    def get_override_parameters(self):
        return [*super().get_override_parameters(), CUSTOMER_ID]

    def get_tags(self) -> list[str]:
        return [getattr(self.view, "tag", "api")]


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "auth_error",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.ParseError: "parse_error",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.ValidationError: "invalid",
    exceptions.Throttled: "rate_limited",
}


def error_body(code: str, message: str, details=None) -> dict:
    body: dict = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def exception_handler(exc, context) -> Response | None:
    """Our JSON shape for every refusal of the native API; None (a 500) for real bugs."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(_("not found"))
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("too_large", str(exc)), status=413)
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return Response(error_body("parse_error", str(exc)), status=400)
    if isinstance(exc, TenancyError):
        code = "not_found" if exc.code == "not_exist" else exc.code
        return Response(error_body(code, exc.message), status=exc.http_status)
    if isinstance(exc, services.NotFound):
        return Response(error_body("not_found", exc.message), status=404)
    if isinstance(exc, services.ContactError):
        return Response(error_body(exc.code, exc.message), status=CONFLICTS.get(exc.code, 400))
    if not isinstance(exc, exceptions.APIException):
        return None
    headers = {}
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        headers["WWW-Authenticate"] = REALM
    if isinstance(exc, exceptions.MethodNotAllowed):
        view = context.get("view")
        if view is not None:
            headers["Allow"] = ", ".join(view.allowed_methods)
    if isinstance(exc, ApiError):
        return Response(error_body(exc.error_code, str(exc.detail)), status=exc.status_code, headers=headers)
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        return Response(error_body(code, _("invalid input"), exc.detail), status=400)
    return Response(error_body(code, str(exc.detail)), status=exc.status_code, headers=headers)


class NativeView(APIView):
    """Base of every native endpoint."""

    authentication_classes = (AppAuthentication,)
    permission_classes = (IsApp,)
    schema = NativeSchema()
    tag = "api"
    # The import upload may be larger than an ordinary request.
    upload = False

    def get_exception_handler(self):
        return exception_handler

    def initial(self, request, *args, **kwargs):
        cap = settings.HUB_V28_MAX_UPLOAD_BYTES if self.upload else settings.HUB_V28_MAX_REQUEST_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > cap:
            raise ApiError("too_large", _("request body over %(bytes)s bytes") % {"bytes": cap}, 413)
        super().initial(request, *args, **kwargs)

    @property
    def account(self) -> Account:
        """The account this request acts for (the app's own, or a manager's sub-account)."""
        if not hasattr(self, "_account"):
            customer_id = self.request.query_params.get("customer_id", "")
            self._account = acting_account(self.request.auth, customer_id, "")
        return self._account


def no_content() -> Response:
    return Response(status=status.HTTP_204_NO_CONTENT)
