"""`is_delay` (V28 6.2): when a receiving domain pushes back (a 4xx reply such as "too many
messages, try again later"), its remaining recipients are spread over the next 24 hours
instead of being retried at the usual pace and failed.

How: the dispatcher looks every few seconds at the campaign's deferred rows. The first
push-back from a domain starts a 24-hour delay for it: its waiting rows become retries due
at an even step, and rows it makes later for that domain get the next due times (status
`retrying` with `next_attempt_at`: the core's claims take them when due, and its retry
schedule and HUB_RETRY_MAX_AGE still apply to later failures). The step spreads the
domain's expected remaining recipients (waiting now, plus its share so far of the contacts
still to read) over 24 hours. After 24 hours new rows of that domain go at the normal pace."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.utils import timezone

from hub.models import SendLog

from .models import Campaign

DAY = timedelta(hours=24)
PUSH_BACK = re.compile(r"too many|try (again )?later|rate.?limit|throttl|slow down|频繁|稍后|过多", re.IGNORECASE)
WAITING = (SendLog.Status.QUEUED, SendLog.Status.RETRYING)


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


def _active(campaign: Campaign, at: datetime) -> dict[str, dict]:
    return {d: st for d, st in (campaign.delayed_domains or {}).items()
            if datetime.fromisoformat(st["until"]) > at}


def schedule_new_rows(campaign: Campaign, rows: list[SendLog], at: datetime) -> dict:
    """Give new rows of a delayed domain their spread due time. Returns the campaign's
    delayed_domains as they must be stored with the slice."""
    delayed = {d: dict(st) for d, st in (campaign.delayed_domains or {}).items()}
    active = {d: delayed[d] for d in _active(campaign, at)}
    if not active:
        return delayed
    for row in rows:
        state = active.get(domain_of(row.to))
        if state is None:
            continue
        due = max(datetime.fromisoformat(state["next"]), at)
        row.status, row.next_attempt_at = SendLog.Status.RETRYING, due
        state["next"] = (due + timedelta(seconds=state["step"])).isoformat()
    return delayed


def push_back(campaign: Campaign, token: str) -> list[str]:
    """Start the delay for domains that pushed back since the last look. Returns them."""
    now = timezone.now()
    active = _active(campaign, now)
    deferred = (SendLog.objects.filter(campaign_id=campaign.pk, status=SendLog.Status.RETRYING,
                                       smtp_code__gte=400, smtp_code__lt=500)
                .values_list("to", "smtp_reply")[:1000])
    domains = sorted({domain_of(to) for to, reply in deferred if PUSH_BACK.search(reply or "")} - set(active))
    for domain in domains:
        _spread(campaign, token, domain, now)
    return domains


def _spread(campaign: Campaign, token: str, domain: str, now: datetime) -> None:
    rows = SendLog.objects.filter(campaign_id=campaign.pk, to__endswith="@" + domain)
    waiting = list(rows.filter(status__in=WAITING).order_by("id").values_list("pk", flat=True))
    so_far = rows.count()
    read, total = max(campaign.total, 1), max(campaign.send_qty_remark, campaign.total)
    expected = len(waiting) + int(so_far * max(total - read, 0) / read)
    step = DAY.total_seconds() / max(expected, 1)
    for i, pk in enumerate(waiting):
        # One by one, each only while still waiting: a worker may claim it meanwhile.
        SendLog.objects.filter(pk=pk, status__in=WAITING).update(
            status=SendLog.Status.RETRYING, next_attempt_at=now + timedelta(seconds=i * step))
    delayed = dict(campaign.delayed_domains or {})
    delayed[domain] = {"until": (now + DAY).isoformat(), "step": step,
                       "next": (now + timedelta(seconds=len(waiting) * step)).isoformat()}
    if Campaign.objects.filter(pk=campaign.pk, run_token=token).update(delayed_domains=delayed):
        campaign.delayed_domains = delayed
