"""The processor: raw hits -> per-recipient, per-link and per-campaign aggregates, and the
`opened`/`clicked` events (hub.events), in one transaction per batch, so a hit is counted
and told exactly once: the batch's aggregates, events (and whatever their receivers write)
and the deletion of its hits commit together or not at all.

One processor at a time: each batch starts by writing the ProcessorLock row. Woken by the
endpoints (hits.wake, at most once per HUB_TRACK_WAKE_SECONDS per web process) and run every
minute by a schedule (migration 0001), so a lost wake-up delays counting by a minute, never
loses a hit."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from hub import events
from hub.models import SendLog

from . import agents, classify
from .models import CampaignTrack, Hit, Link, LinkClick, ProcessorLock, Recipient

log = logging.getLogger(__name__)

BATCH = 2000


def process(deadline_seconds: float = 50.0) -> int:
    """Process waiting hits until none are left (or the deadline passes: then the next run
    goes on). Returns the number of hits taken."""
    ProcessorLock.objects.get_or_create(pk=1)
    started, total = time.monotonic(), 0
    while time.monotonic() - started < deadline_seconds:
        taken = process_batch(BATCH)
        total += taken
        if taken < BATCH:
            break
    return total


def _hour(at: datetime) -> str:
    return timezone.localtime(at).strftime("%Y-%m-%d %H")


def _bump(breakdown: dict, group: str, key: str, n: int = 1) -> None:
    bucket = breakdown.setdefault(group, {})
    bucket[key or "-"] = bucket.get(key or "-", 0) + n


def _first(current, at):
    return at if current is None or at < current else current


def _last(current, at):
    return at if current is None or at > current else current


class _Batch:
    def __init__(self, hits: list[Hit]) -> None:
        self.hits = hits
        self.rows = {r.pk: r for r in SendLog.objects.filter(pk__in={h.log_id for h in hits})
                     .only("id", "to", "app_id", "contact_id", "campaign_id", "sent_at")}
        campaign_model = apps.get_model("campaigns", "Campaign")
        self.campaigns = {c.pk: c for c in campaign_model.objects.filter(pk__in={h.campaign_id for h in hits})
                          .only("id", "account_id")}
        self.links = {link.pk: link for link in Link.objects.filter(pk__in={h.link_id for h in hits if h.link_id})}
        self.tracks = {t.campaign_id: t for t in CampaignTrack.objects.filter(campaign_id__in=self.campaigns)}
        for campaign in self.campaigns.values():
            if campaign.pk not in self.tracks:  # (a report may have made it meanwhile)
                self.tracks[campaign.pk], _new = CampaignTrack.objects.get_or_create(
                    campaign=campaign, defaults={"account_id": campaign.account_id})
        self.recipients = {r.log_id: r for r in Recipient.objects.filter(log_id__in=self.rows)}
        self.new_recipients: list[Recipient] = []
        self.clicks = {(c.recipient_id, c.link_id): c for c in LinkClick.objects.filter(
            recipient__in=[r.pk for r in self.recipients.values()], link__in=list(self.links))}
        self.new_clicks: dict[tuple, LinkClick] = {}
        self.touched_clicks: dict[int, LinkClick] = {}
        self.link_counts = dict(Link.objects.filter(campaign_id__in=self.campaigns).values_list("campaign_id")
                                .annotate(n=Count("id"))
                                .values_list("campaign_id", "n"))
        self.touched_links: set[int] = set()
        self.events: list[events.Event] = []

    def valid(self, hit: Hit) -> bool:
        row = self.rows.get(hit.log_id)
        if row is None or row.campaign_id != hit.campaign_id or hit.campaign_id not in self.campaigns:
            return False
        if hit.kind == Hit.CLICK:
            link = self.links.get(hit.link_id)
            return link is not None and link.campaign_id == hit.campaign_id
        return hit.kind == Hit.OPEN

    def recipient(self, row: SendLog) -> Recipient:
        found = self.recipients.get(row.pk)
        if found is None:
            found = Recipient(campaign_id=row.campaign_id, log_id=row.pk, contact_id=row.contact_id,
                              email=(row.to or "").strip().lower()[:254])
            self.recipients[row.pk] = found
            self.new_recipients.append(found)
        return found

    def burst_hits(self) -> set[int]:
        """Ids of click hits that are part of a burst (classify.bursts), per recipient."""
        per_recipient: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
        for hit in self.hits:
            if hit.kind == Hit.CLICK:
                per_recipient[hit.log_id].append((hit.at.timestamp(), hit.link_id, hit.pk))
        window = settings.HUB_TRACK_BURST_SECONDS
        if per_recipient:
            # The last click of each link by these recipients counted in earlier batches, when
            # recent: a burst split over two batches is still seen (0 = not a hit of this batch).
            since = min(h.at for h in self.hits) - timedelta(seconds=window)
            for log_id, last, link_id in LinkClick.objects.filter(
                    recipient__log_id__in=list(per_recipient), click_last__gte=since).values_list(
                    "recipient__log_id", "click_last", "link_id"):
                per_recipient[log_id].append((last.timestamp(), link_id, 0))
        flagged: set[int] = set()
        for log_id, clicks in per_recipient.items():
            clicks.sort()
            threshold = classify.burst_threshold(self.link_counts.get(self.rows[log_id].campaign_id, 0)
                                                 if log_id in self.rows else 0)
            found = classify.bursts([(t, link) for t, link, _pk in clicks], threshold, window)
            flagged.update(clicks[i][2] for i in found if clicks[i][2])
        return flagged

    def apply(self, hit: Hit, reason: str) -> None:
        row = self.rows[hit.log_id]
        track = self.tracks[hit.campaign_id]
        rec = self.recipient(row)
        at, human = hit.at, not reason
        if human:
            who = agents.agent(hit.user_agent)
            addr = agents.location(hit.ip) if hit.ip else ""
            if rec.open_total == 0 and rec.click_total == 0:
                rec.ip_first, rec.addr_first = hit.ip or None, addr
                rec.browser, rec.os, rec.device = who.browser, who.os, who.device
                _bump(track.breakdown, "device", who.device)
                _bump(track.breakdown, "browser", who.browser)
                _bump(track.breakdown, "os", who.os)
                _bump(track.breakdown, "addr", addr)
            rec.ip_last, rec.addr_last = hit.ip or None, addr
        else:
            rec.machine_reason = reason
            _bump(track.breakdown, "machine", reason)
        if hit.kind == Hit.OPEN or (hit.kind == Hit.CLICK and human and rec.open_total == 0):
            # A click is an open when no (human) open was seen: the pixel was blocked.
            self._open(track, rec, at, human)
        if hit.kind == Hit.CLICK:
            self._click(track, rec, hit, at, human)
        campaign = self.campaigns[hit.campaign_id]
        data = {"ip": hit.ip, "user_agent": hit.user_agent, "machine": not human, "reason": reason}
        if hit.kind == Hit.CLICK:
            data["url"] = hit.url or self.links[hit.link_id].url
            data["link_id"] = hit.link_id
        self.events.append(events.Event(
            events.Kind.OPENED if hit.kind == Hit.OPEN else events.Kind.CLICKED, email=rec.email, at=at,
            app_id=row.app_id, account_id=campaign.account_id, log_id=row.pk, campaign_id=row.campaign_id,
            contact_id=row.contact_id, data=data))

    def _open(self, track: CampaignTrack, rec: Recipient, at, human: bool) -> None:
        if human:
            if rec.open_total == 0:
                track.open_unique += 1
                if rec.machine_open_total:
                    track.machine_open_unique -= 1  # no longer "machines only"
            rec.open_total += 1
            rec.open_first, rec.open_last = _first(rec.open_first, at), _last(rec.open_last, at)
            track.open_total += 1
            track.open_first, track.open_last = _first(track.open_first, at), _last(track.open_last, at)
            _bump(track.breakdown, "open_hour", _hour(at))
        else:
            if rec.machine_open_total == 0 and rec.open_total == 0:
                track.machine_open_unique += 1
            rec.machine_open_total += 1
            track.machine_open_total += 1
            _bump(track.breakdown, "machine_open_hour", _hour(at))

    def _click(self, track: CampaignTrack, rec: Recipient, hit: Hit, at, human: bool) -> None:
        link = self.links[hit.link_id]
        self.touched_links.add(link.pk)
        key = (rec.pk, link.pk) if rec.pk else None
        click = self.clicks.get(key) if key else None
        if click is not None:
            self.touched_clicks[click.pk] = click
        else:
            click = self.new_clicks.get((rec.log_id, link.pk))
        if click is None:
            click = LinkClick(campaign_id=hit.campaign_id, link=link, recipient=rec)
            self.new_clicks[(rec.log_id, link.pk)] = click
        if human:
            if rec.click_total == 0:
                track.click_unique += 1
                if rec.machine_click_total:
                    track.machine_click_unique -= 1
            if click.click_total == 0:
                link.click_unique += 1
            rec.click_total += 1
            click.click_total += 1
            link.click_total += 1
            track.click_total += 1
            for obj in (rec, click, link, track):
                obj.click_first, obj.click_last = _first(obj.click_first, at), _last(obj.click_last, at)
            _bump(track.breakdown, "click_hour", _hour(at))
        else:
            if rec.machine_click_total == 0 and rec.click_total == 0:
                track.machine_click_unique += 1
            rec.machine_click_total += 1
            click.machine_click_total += 1
            link.machine_click_total += 1
            track.machine_click_total += 1
            _bump(track.breakdown, "machine_click_hour", _hour(at))

    def save(self) -> None:
        # Plain one-row UPDATEs by primary key: Django's bulk_update writes one CASE per
        # field with a branch per row, which SQLite evaluates row by row (quadratic).
        Recipient.objects.bulk_create(self.new_recipients)
        new_ids = {id(r) for r in self.new_recipients}
        _update([r for r in self.recipients.values() if id(r) not in new_ids], RECIPIENT_FIELDS)
        for click in self.new_clicks.values():
            click.recipient_id = click.recipient.pk  # set once the recipient has its id
        LinkClick.objects.bulk_create(list(self.new_clicks.values()))
        _update(list(self.touched_clicks.values()), ["click_total", "click_first", "click_last", "machine_click_total"])
        _update([self.links[pk] for pk in self.touched_links],
                ["click_unique", "click_total", "click_first", "click_last", "machine_click_total"])
        for track in self.tracks.values():
            track.save()


RECIPIENT_FIELDS = ["browser", "os", "device", "ip_first", "ip_last", "addr_first", "addr_last", "open_total",
                    "open_first", "open_last", "click_total", "click_first", "click_last", "machine_open_total",
                    "machine_click_total", "machine_reason"]


def _update(objects: list, fields: list[str]) -> None:
    for obj in objects:
        type(obj).objects.filter(pk=obj.pk).update(**{name: getattr(obj, name) for name in fields})


def process_batch(limit: int = BATCH) -> int:
    with transaction.atomic():
        ProcessorLock.objects.filter(pk=1).update(ran_at=timezone.now())  # one processor at a time
        hits = list(Hit.objects.order_by("id")[:limit])
        if not hits:
            return 0
        batch = _Batch(hits)
        bursts = batch.burst_hits()
        dropped = 0
        for hit in hits:
            if not batch.valid(hit):
                dropped += 1  # signed, but its row, campaign or link is gone
                continue
            row = batch.rows[hit.log_id]
            after = (hit.at - row.sent_at).total_seconds() if row.sent_at else None
            reason = classify.machine_reason(classify.Facts(hit.user_agent, hit.ip, hit.head, after))
            if not reason and hit.pk in bursts:
                reason = "click_burst"
            batch.apply(hit, reason)
        batch.save()
        for event in batch.events:
            events.emit(event)
        Hit.objects.filter(pk__in=[h.pk for h in hits]).delete()
        if dropped:
            log.warning("tracking: %s hits dropped (their message, campaign or link no longer exists)", dropped)
        return len(hits)
