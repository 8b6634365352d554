"""The one Django view behind `/apinew/<script>.php` and `/mm-ms/apinew/<script>.php`: finds
the action for (script, `do`), checks the method, the body size and the credentials, picks
the acting account, runs the action and turns every refusal into the XML envelope.

Order of the checks (each answers before anything is read or written):
unknown script/do (404 `unknown_action`) -> method (405 `method_not_allowed`) -> body size
(413 `too_large`) -> credentials (401 `auth_error`; 403 `forbidden` for a disabled app, a
refused IP or a disabled account) -> `customer_id` (404 `not_exist`) -> the action."""

from __future__ import annotations

import base64
import binascii
import logging

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from hub.access import admit_login, client_ip
from hub.models import App, Site
from hub.refusals import Refusal
from hub.tenancy import TenancyError, acting_account

from . import account as _account  # noqa: F401  (registers chapter 1)
from . import bs as _bs  # noqa: F401  (registers chapter 7)
from . import mloperate as _mloperate  # noqa: F401  (registers chapter 4)
from . import statistic as _statistic  # noqa: F401  (registers 2.2-2.6)
from . import task as _task  # noqa: F401  (registers chapter 6 and 2.1)
from . import template as _template  # noqa: F401  (registers chapter 5)
from . import track as _track  # noqa: F401  (registers chapter 3)
from .core import ACTIONS, Call, Params, V28Error, error_response

log = logging.getLogger(__name__)

REALM = 'Basic realm="SMTP Hub V28 API", charset="UTF-8"'


def _auth_error(message: str) -> V28Error:
    return V28Error("auth_error", message, 401, headers={"WWW-Authenticate": REALM})


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise _auth_error(_("use HTTP Basic authentication with your AppID and AppSecret"))
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _auth_error(_("malformed Authorization header")) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # what most clients use for Basic; a wrong id fails below anyway
    username, sep, password = text.partition(":")
    if not sep:
        raise _auth_error(_("malformed Authorization header"))
    return username, password


def _credentials(request: HttpRequest) -> tuple[str, str]:
    basic = _basic_credentials(request)
    if basic is not None:
        return basic
    in_query = "username" in request.GET or "password" in request.GET
    if in_query and settings.HUB_V28_QUERY_CREDENTIALS:
        # The legacy /api/ style; off by default because URLs end up in proxy and server logs.
        return request.GET.get("username", ""), request.GET.get("password", "")
    if in_query:
        raise _auth_error(_("credentials in the query string are not accepted; use HTTP Basic authentication"))
    raise _auth_error(_("authentication required: HTTP Basic with your AppID and AppSecret"))


def _authenticate(request: HttpRequest) -> App:
    username, password = _credentials(request)
    try:
        # The site's IP blocklist, the constant-time credential check, the app's allowed IPs.
        app = admit_login(username, password, client_ip(request.META, Site.cached()))
    except Refusal as refusal:
        if refusal.http_status == 401 or refusal.error in ("appid_required", "appsecret_required"):
            raise _auth_error(_("wrong AppID or AppSecret")) from refusal
        raise V28Error("forbidden", refusal.msg, 403) from refusal
    return app


def _content_length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _run(request: HttpRequest, script: str) -> HttpResponse:
    do = request.GET.get("do", "").strip()
    entry = ACTIONS.get((script, do))
    if entry is None:
        message = _("do is required") if not do else _("unknown action %(script)s.php?do=%(do)s") % {
            "script": script, "do": do[:50]}
        raise V28Error("unknown_action", message, 404)
    if request.method not in entry.methods:
        raise V28Error("method_not_allowed", _("use %(methods)s for this action") % {
            "methods": " or ".join(entry.methods)}, 405, headers={"Allow": ", ".join(entry.methods)})
    cap = settings.HUB_V28_MAX_UPLOAD_BYTES if entry.upload else settings.HUB_V28_MAX_REQUEST_BYTES
    if _content_length(request) > cap:
        raise V28Error("too_large", _("request body over %(bytes)s bytes") % {"bytes": cap}, 413)
    app = _authenticate(request)
    try:
        params = Params(request)
        account = acting_account(app, params.get("customer_id"), params.get("user_type"))
    except TenancyError as exc:
        raise V28Error(exc.code, exc.message, exc.http_status) from exc
    return entry.func(Call(request, app, account, params))


@csrf_exempt
def endpoint(request: HttpRequest, script: str) -> HttpResponse:
    try:
        return _run(request, script)
    except V28Error as error:
        return error_response(error)
    except RequestDataTooBig as exc:
        return error_response(V28Error("too_large", str(exc), 413))
    except (TooManyFieldsSent, TooManyFilesSent, MultiPartParserError) as exc:
        return error_response(V28Error("param_error", str(exc)[:200], 400))
