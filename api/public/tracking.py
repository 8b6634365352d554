"""The tracking endpoints reached from campaign mails (hub.tracking): the open pixel and the
click redirect. Both check the URL's signature (no database read), append one raw hit and
answer; counting is the processor's. A URL that does not verify is a 404 and writes nothing,
so no URL of ours redirects to a target we did not sign."""

from __future__ import annotations

import base64

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.views.decorators.http import require_http_methods

from hub.access import client_ip
from hub.models import Site
from hub.tracking import hits, tokens
from hub.tracking.models import Hit

# A transparent 1x1 GIF (42 bytes).
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _no_cache(response: HttpResponse) -> HttpResponse:
    # Every open must reach us: no browser, proxy or CDN may answer from a cache.
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0, private"
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


def _not_found() -> HttpResponse:
    return _no_cache(HttpResponseNotFound(b"not found\n", content_type="text/plain; charset=utf-8"))


def _who(request: HttpRequest) -> tuple[str, str]:
    return client_ip(request.META, Site.cached()) or "", request.META.get("HTTP_USER_AGENT", "")


@require_http_methods(["GET", "HEAD"])
def pixel(request: HttpRequest, token: str) -> HttpResponse:
    signed = tokens.read_open(token)
    if signed is None:
        return _not_found()
    ip, agent = _who(request)
    hits.record(Hit.OPEN, signed, ip, agent, head=request.method == "HEAD")
    response = HttpResponse(GIF, content_type="image/gif")
    response["Content-Length"] = str(len(GIF))
    return _no_cache(response)


@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str) -> HttpResponse:
    target = request.GET.get("u", "")
    signed = tokens.read_click(token, target)
    if signed is None:
        return _not_found()
    url = hits.click_target(signed)
    if url is None:
        return _not_found()
    ip, agent = _who(request)
    hits.record(Hit.CLICK, signed, ip, agent, head=request.method == "HEAD")
    return _no_cache(HttpResponseRedirect(url))
