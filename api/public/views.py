"""Signed public pages for contacts: unsubscribe (with RFC 8058 one-click) and double
opt-in confirmation. GET only shows a page with a button: link scanners and mail
previews fetch links, and must not unsubscribe or confirm anyone. POST acts.

No CSRF token: RFC 8058 one-click POSTs come from mail providers, who have none, and the
signed token in the URL already proves the request comes from the link's recipient."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from hub.contacts import links, services
from hub.mailtemplates import links as template_links
from hub.mailtemplates.personalize import contact_values
from hub.mailtemplates.personalize import render as render_template


def _private(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    response["X-Robots-Tag"] = "noindex"
    return response


def _page(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    # ?lang=en / ?lang=zh-hans switches the page's language (links on the page itself).
    lang = request.GET.get("lang", "")
    languages = dict(settings.LANGUAGES)
    if lang not in languages:
        lang = translation.get_language()
    with translation.override(lang):
        context = {**context, "languages": settings.LANGUAGES, "lang": lang, "path": request.path}
        return _private(render(request, template, context))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    contact = links.contact_for_token(token, links.UNSUBSCRIBE_SALT)
    if contact is None:
        raise Http404
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"  # RFC 8058: a machine, not a person
        services.unsubscribe_contact(contact, how="one-click" if one_click else "link")
        if one_click:
            return _private(HttpResponse("unsubscribed\n", content_type="text/plain; charset=utf-8"))
        return _page(request, "public/unsubscribe.html", {"contact": contact, "state": "done"})
    state = "ask" if contact.subscribed or contact.pending else "already"
    return _page(request, "public/unsubscribe.html", {"contact": contact, "state": state})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    contact = links.contact_for_token(token, links.CONFIRM_SALT, max_age=settings.HUB_CONFIRM_MAX_AGE_SECONDS)
    if contact is None:
        raise Http404
    if request.method == "POST":
        services.confirm_contact(contact)
        contact.refresh_from_db()
    state = "ask" if contact.pending else ("done" if contact.subscribed else "gone")
    return _page(request, "public/confirm.html", {"contact": contact, "state": state})


# The web view shows a customer's HTML on the hub's own host: the CSP `sandbox` gives it an
# opaque origin (no cookies, no access to the hub), scripts, forms and plugins are blocked;
# remote images, styles and fonts load (a web view without the customer's images is useless)
# and links open in a new top-level page.
WEBVIEW_CSP = ("default-src 'none'; style-src 'unsafe-inline' https: http:; img-src https: http: data:; "
               "font-src https: http: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
               "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation")


@require_http_methods(["GET"])
def webview(request: HttpRequest, token: str) -> HttpResponse:
    """"View in browser": the template rendered for the contact the signed link names."""
    found = template_links.for_token(token)
    if found is None:
        raise Http404
    template, contact = found
    rendered = render_template(template, contact_values(contact), template_links.links_for(template, contact))
    response = _private(HttpResponse(rendered.html, content_type="text/html; charset=utf-8"))
    response["Content-Security-Policy"] = WEBVIEW_CSP
    response["X-Content-Type-Options"] = "nosniff"
    return response
