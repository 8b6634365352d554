"""The pieces every V28 action uses: the error type, the answers (XML `<result>` envelope and
other documents), the parameters of a call, and the table of actions.

Parameters follow the reference: `do` only from the query string; every other parameter
from the query string or the POST body (the 4.8.1 remark "all parameters except username,
password, do may also be POSTed", which the inventory ((e) #48) applies to every endpoint;
when a name is in both, the body wins, as PHP's $_REQUEST does). Exceptions are declared
per parameter: 4.7's `list_id` is query-only, `ml_addr` and `file` are body-only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from hub.models import Account, App

from .xml import Element, cdata, el, render

CONTENT_TYPE = "text/xml; charset=utf-8"


class V28Error(Exception):
    """An answer other than success: `<result><status>{ident}</status><data>{message}</data>`
    with HTTP `http_status`. Raised before anything is written, or by a service that wrote
    nothing."""

    def __init__(self, ident: str, message: str, http_status: int = 400, headers: dict | None = None) -> None:
        self.ident = ident
        self.message = str(message)
        self.http_status = http_status
        self.headers = headers or {}
        super().__init__(f"{ident}: {self.message}")


def param_error(message: str) -> V28Error:
    return V28Error("param_error", message, 400)


def not_exist(message: str = "") -> V28Error:
    return V28Error("not_exist", message or _("not found"), 404)


def xml_response(root: Element, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(render(root), content_type=CONTENT_TYPE, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def result(ident: str, data: object, *, http_status: int = 200, as_cdata: bool = True,
           headers: dict | None = None) -> HttpResponse:
    """The reference's write-result envelope. `data` is CDATA (messages, and 4.8.3's id, as
    the samples show) unless `as_cdata` is off (4.3 shows the new list id as plain text)."""
    data_el = cdata("data", data) if as_cdata else el("data", data)
    return xml_response(el("result", el("status", ident), data_el), http_status, headers)


def error_response(error: V28Error) -> HttpResponse:
    return result(error.ident, error.message, http_status=error.http_status, headers=error.headers)


# --- parameters --------------------------------------------------------------------------

QUERY_ONLY = "query"
BODY_ONLY = "body"
ANYWHERE = "any"


class Params:
    """The parameters of one call. Every value is length-checked (HUB_V28_MAX_PARAM_CHARS,
    or the caller's `max_chars` for the batch fields, which the body cap bounds)."""

    def __init__(self, request: HttpRequest) -> None:
        self.query = request.GET
        self.body = request.POST if request.method == "POST" else None

    @staticmethod
    def _lookup(data, name: str) -> str | None:
        if data is None:
            return None
        if name in data:
            return data.get(name)
        # Var10 (the reference's own spelling) and other case variants.
        lowered = name.lower()
        for key in data:
            if key.lower() == lowered:
                return data.get(key)
        return None

    def get(self, name: str, *, source: str = ANYWHERE, max_chars: int | None = None) -> str:
        value = None
        if source != QUERY_ONLY:
            value = self._lookup(self.body, name)
        if value is None and source != BODY_ONLY:
            value = self._lookup(self.query, name)
        if value is None and source == BODY_ONLY and self._lookup(self.query, name) is not None:
            raise param_error(_("%(name)s must be sent in the POST body") % {"name": name})
        value = (value or "").strip()
        limit = max_chars or settings.HUB_V28_MAX_PARAM_CHARS
        if len(value) > limit:
            raise param_error(_("%(name)s is too long (at most %(limit)s characters)") % {"name": name, "limit": limit})
        return value

    def required(self, name: str, **kwargs) -> str:
        value = self.get(name, **kwargs)
        if not value:
            raise param_error(_("%(name)s is required") % {"name": name})
        return value

    def number(self, name: str, *, required: bool = True, source: str = ANYWHERE,
               minimum: int = 1) -> int | None:
        """A whole number >= minimum; absent gives None unless required."""
        value = self.get(name, source=source)
        if not value:
            if required:
                raise param_error(_("%(name)s is required") % {"name": name})
            return None
        if not (value.isascii() and value.isdigit() and len(value) < 19) or int(value) < minimum:
            raise param_error(_("%(name)s must be a whole number of at least %(minimum)s")
                              % {"name": name, "minimum": minimum})
        return int(value)


# --- the table of actions ----------------------------------------------------------------

@dataclass
class Call:
    request: HttpRequest
    app: App
    account: Account
    params: Params


@dataclass
class Action:
    script: str
    do: str
    func: Callable[[Call], HttpResponse]
    methods: tuple[str, ...] = ("GET", "POST")
    # The status identifier for a service's refusal (ContactError), where the reference
    # names one for the action (4.3-4.5); otherwise the service's own code is used.
    error_ident: str = ""
    # Uploads may be larger than the ordinary request body cap.
    upload: bool = False
    extra: dict = field(default_factory=dict)


ACTIONS: dict[tuple[str, str], Action] = {}


def action(script: str, do: str, *, methods: tuple[str, ...] = ("GET", "POST"), error_ident: str = "",
           upload: bool = False) -> Callable:
    """Register `func` as the handler of `<script>.php?do=<do>`."""

    def register(func: Callable[[Call], HttpResponse]) -> Callable[[Call], HttpResponse]:
        key = (script, do)
        if key in ACTIONS:
            raise RuntimeError(f"{script}.php?do={do} registered twice")
        ACTIONS[key] = Action(script, do, func, methods, error_ident, upload)
        return func

    return register
