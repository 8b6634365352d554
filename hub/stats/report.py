"""A campaign's report for the admin page, its exports and the native API: totals, per hour,
per template and per subject (from the subject markers of its counter rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from hub.campaigns.services import Outcomes
from hub.mailtemplates.models import Template
from hub.models import Account

from .models import Tally
from .services import MARKER, Counts, grouped, total


@dataclass
class Part:
    template_id: int
    subject_no: int  # 1-based; 0 = the template as a whole
    label: str
    counts: Counts


@dataclass
class CampaignReport:
    campaign_id: int
    totals: Counts
    hours: list[tuple[datetime, Counts]]
    templates: list[Part]
    subjects: list[Part]


def campaign_report(campaign_id: int, account: Account | None = None) -> CampaignReport:
    """A campaign's outcomes: totals, per hour, per template and per subject. `account`
    restricts to that account's counters (the APIs); the admin passes None."""
    rows = Tally.objects.filter(campaign_id=campaign_id)
    if account is not None:
        rows = rows.filter(account=account)
    by_marker = grouped(rows, "marker")
    by_hour = [(timezone.localtime(h), c) for (h,), c in grouped(rows, "hour")]
    totals = Counts()
    per_template: dict[int, Counts] = {}
    per_subject: dict[tuple[int, int], Counts] = {}
    for (marker,), counts in by_marker:
        totals = totals.add(counts)
        m = MARKER.match(marker)
        tpl, no = (int(m.group(2)), int(m.group(3))) if m else (0, 0)
        per_template[tpl] = per_template.get(tpl, Counts()).add(counts)
        per_subject[(tpl, no)] = per_subject.get((tpl, no), Counts()).add(counts)
    templates = dict(Template.objects.filter(pk__in=per_template).values_list("pk", "name"))
    subjects = dict(Template.objects.filter(pk__in=per_template).values_list("pk", "subjects"))

    def subject_text(tpl: int, no: int) -> str:
        options = subjects.get(tpl) or []
        return options[no - 1] if 0 < no <= len(options) else f"#{no}"

    return CampaignReport(
        campaign_id, totals, by_hour,
        [Part(t, 0, templates.get(t, f"#{t}"), c) for t, c in sorted(per_template.items())],
        [Part(t, n, f"{templates.get(t, f'#{t}')} · {subject_text(t, n)}", c)
         for (t, n), c in sorted(per_subject.items())])


def campaign_outcomes(campaign_id: int) -> Outcomes:
    """The campaign's progress figures (hub.campaigns.services.progress, registered in
    StatsConfig.ready()): one SUM over its counter rows (index (campaign_id, hour))."""
    t = total(Tally.objects.filter(campaign_id=campaign_id))
    return Outcomes(sent=t.sent, failed=t.failed, bounced=t.bounced, failure_types=dict(t.types))
