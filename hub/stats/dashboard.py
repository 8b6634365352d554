"""The admin dashboard's campaign figures (registered in admin.py with
hub.admin.dashboard.register_section): today's campaign mail sent and failed, the running
campaigns with their outcomes so far. Sums over the counters: a few indexed rows."""

from __future__ import annotations

from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from hub.campaigns.models import Campaign, State

from .models import Tally
from .services import grouped, total

RUNNING_SHOWN = 10


def campaign_figures(request: HttpRequest) -> dict | None:
    if not request.user.has_perm("campaigns.view_campaign"):
        return None
    today = total(Tally.objects.filter(Q(day=timezone.localdate()), Q(campaign_id__gt=0)))
    running = Campaign.objects.filter(state=State.SENDING)
    shown = list(running.select_related("account").order_by("-id")[:RUNNING_SHOWN])
    outcomes = {pk: c for (pk,), c in grouped(Tally.objects.filter(campaign_id__in=[c.pk for c in shown]),
                                               "campaign_id")}
    rows = []
    for c in shown:
        o = outcomes.get(c.pk)
        rows.append({"campaign": c, "sent": o.sent if o else 0, "failed": o.failed if o else 0, "queued": c.queued,
                     "url": reverse("admin:campaigns_campaign_change", args=[c.pk]),
                     "report_url": reverse("admin:stats_campaign_report", args=[c.pk])})
    return {"sent_today": today.sent, "failed_today": today.failed, "running_count": running.count(),
            "running": rows, "campaigns_url": reverse("admin:campaigns_campaign_changelist")}
