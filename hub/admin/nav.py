"""The admin's sidebar and per-page context, referenced by dotted path from
settings.UNFOLD (so settings import no app code and labels are translated per request)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.db import DatabaseError
from django.http import HttpRequest
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _

from ..models import SendLog


def _perm(codename: str) -> Callable[[HttpRequest], bool]:
    return lambda request: request.user.has_perm(codename)


def _registered(app_label: str, model_name: str) -> bool:
    return any(m._meta.app_label == app_label and m._meta.model_name == model_name for m in admin.site._registry)


def _item(title: str, icon: str, app_label: str, model_name: str, **extra) -> dict:
    return {
        "title": title,
        "icon": icon,
        "link": reverse(f"admin:{app_label}_{model_name}_changelist"),
        "permission": _perm(f"{app_label}.view_{model_name}"),
        **extra,
    }


def navigation(request: HttpRequest) -> list[dict]:
    """The sidebar: mail first, then the queue, then settings and people."""
    waiting = queue_badge(request)
    mail = [
        _item(_("Send logs"), "mail", "hub", "sendlog", **({"badge": waiting, "badge_variant": "info"} if waiting else {})),
        _item(_("Accounts"), "business", "hub", "account"),
        _item(_("Apps"), "apps", "hub", "app"),
        _item(_("SMTP servers"), "dns", "hub", "smtpserver"),
        _item(_("Destinations"), "alt_route", "hub", "destination"),
    ]
    if _registered("hub", "suppression"):  # EXTENSION POINT (reliability)
        mail.append(_item(_("Suppression list"), "block", "hub", "suppression"))
    if _registered("hub", "suppressionpolicy"):
        mail.append(_item(_("Suppression policies"), "policy", "hub", "suppressionpolicy"))
    mail += [_item(title, icon, "inbound", model) for title, icon, model in (
        (_("Bounce and complaint reports"), "unsubscribe", "report"),
        (_("Bounce mailboxes (IMAP)"), "move_to_inbox", "bouncemailbox")) if _registered("inbound", model)]
    # EDM apps' pages, each shown once its app is installed and registered (by label: the
    # core admin does not import them).
    contacts = [_item(title, icon, "contacts", model) for title, icon, model in (
        (_("Contact lists"), "contacts", "maillist"), (_("Contacts"), "person_search", "contact"),
        (_("Imports"), "upload_file", "importjob")) if _registered("contacts", model)]
    templates = [_item(title, icon, "mailtemplates", model) for title, icon, model in (
        (_("Templates"), "drafts", "template"), (_("Risky phrases"), "report", "riskyphrase"))
        if _registered("mailtemplates", model)]
    campaigns = [_item(title, icon, "campaigns", model) for title, icon, model in (
        (_("Campaigns"), "campaign", "campaign"), (_("Campaign settings"), "rule", "campaignsettings"))
        if _registered("campaigns", model)]
    domains = [_item(title, icon, "domains", model) for title, icon, model in (
        (_("Sending domains"), "domain_verification", "domain"), (_("DKIM keys"), "key", "dkimkey"),
        (_("Mailboxes"), "alternate_email", "mailbox")) if _registered("domains", model)]
    webhooks = [_item(title, icon, "webhooks", model) for title, icon, model in (
        (_("Webhooks"), "webhook", "endpoint"), (_("Webhook events"), "outbox", "event"),
        (_("Webhook attempts"), "history", "attempt")) if _registered("webhooks", model)]
    tracking = [_item(title, icon, "tracking", model) for title, icon, model in (
        (_("Opens and clicks"), "ads_click", "campaigntrack"), (_("Tracking domains"), "travel_explore", "trackdomain"))
        if _registered("tracking", model)]
    queue = []
    if _registered("django_q", "ormq"):
        queue.append(_item(_("Queued tasks"), "pending_actions", "django_q", "ormq"))
    queue += [
        _item(_("Failed tasks"), "error", "django_q", "failure"),
        _item(_("Successful tasks"), "task_alt", "django_q", "success"),
        _item(_("Scheduled tasks"), "schedule", "django_q", "schedule"),
    ]
    return [
        {"items": [{"title": _("Dashboard"), "icon": "dashboard", "link": reverse("admin:index")}]},
        {"title": _("Mail"), "separator": True, "collapsible": False, "items": mail},
        *([{"title": _("Contacts"), "separator": True, "collapsible": False, "items": contacts}] if contacts else []),
        *([{"title": _("Templates"), "separator": True, "collapsible": False, "items": templates}] if templates else []),
        *([{"title": _("Campaigns"), "separator": True, "collapsible": False, "items": campaigns}] if campaigns else []),
        *([{"title": _("Domains"), "separator": True, "collapsible": False, "items": domains}] if domains else []),
        *([{"title": _("Webhooks"), "separator": True, "collapsible": False, "items": webhooks}] if webhooks else []),
        *([{"title": _("Tracking"), "separator": True, "collapsible": False, "items": tracking}] if tracking else []),
        {"title": _("Task queue"), "separator": True, "collapsible": True, "items": queue},
        {
            "title": _("Settings"),
            "separator": True,
            "collapsible": False,
            "items": [
                {"title": _("Site settings"), "icon": "tune", "link": reverse("admin:hub_site_changelist"),
                 "permission": _perm("hub.view_site")},
                _item(_("Users"), "person", "auth", "user"),
                _item(_("Groups"), "group", "auth", "group"),
                _item(_("Audit log"), "history", "admin", "logentry"),
                {"title": _("API documentation"), "icon": "api", "link": reverse("v1-docs")},
            ],
        },
    ]


# The badge counts at most this many rows: a backlog of millions would otherwise be counted
# in full on every admin page. More shows as "999+".
BADGE_CAP = 1000


def queue_badge(request: HttpRequest) -> str:
    """Messages waiting (queued or retrying), shown next to "Send logs"; "" when none (no
    badge). One bounded COUNT over the status index per admin page."""
    if not request.user.has_perm("hub.view_sendlog"):
        return ""
    try:
        waiting = SendLog.objects.filter(status__in=SendLog.CLAIMABLE).order_by()[:BADGE_CAP].count()
    except DatabaseError:
        return ""
    if waiting >= BADGE_CAP:
        return f"{BADGE_CAP - 1}+"
    return str(waiting) if waiting else ""


def global_context(request: HttpRequest) -> dict:
    # The language switch posts to /i18n/setlang/; come back to the same page.
    return {"redirect_to": request.get_full_path()}


def favicon_url(request: HttpRequest) -> str:
    # The icon every admin page declares (settings.UNFOLD["SITE_FAVICONS"]); /favicon.ico
    # redirects to the same file for clients that ask blindly (smtphub/urls.py).
    return static(FAVICON)


FAVICON = "hub/favicon.svg"


def site_subheader(request: HttpRequest) -> str:
    return _("Mail back office")
