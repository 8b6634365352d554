"""The tracking reports (V28 3.1-3.5, and the same on the native API and in the admin):
plain functions over the counters the processor keeps, every one filtered by the acting
account (another account's campaign, track or link is "not found").

They read counters and index ranges only: the overview is a handful of rows whatever the
campaign's size; the detail lists stream by primary key (the caller pages or streams)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.apps import apps
from django.db.models import Sum
from django.utils.translation import gettext_lazy as _

from hub.models import Account

from .models import CampaignTrack, Link, LinkClick, Recipient

CHUNK = 2000
ENDED = (3, 4, -3)  # completed, stopped, cancelled: the campaign's sent/failed counts are final


class TrackingError(Exception):
    code = "param_error"
    http_status = 400

    def __init__(self, message: str, code: str | None = None, http_status: int | None = None) -> None:
        self.message = str(message)
        self.code = code or self.code
        self.http_status = http_status or self.http_status
        super().__init__(self.message)


class NotFound(TrackingError):
    code = "not_exist"
    http_status = 404


def _campaign_model():
    return apps.get_model("campaigns", "Campaign")


def find_campaign(account: Account, send_id: int | None = None, ident: str = ""):
    """The account's campaign by batch number (`ident`, which wins as in 3.2/3.3/3.5) or id
    (send_id)."""
    campaigns = _campaign_model().objects.filter(account=account)
    if ident:
        found = campaigns.filter(sn=ident).first()
    elif send_id is not None:
        found = campaigns.filter(pk=send_id).first() if 0 < send_id < 2**63 else None
    else:
        raise TrackingError(_("id or ident is required"))
    if found is None:
        raise NotFound(_("task not found"))
    return found


def track_of(campaign) -> CampaignTrack:
    """The campaign's counters (made empty when nothing was counted yet)."""
    track, _created = CampaignTrack.objects.get_or_create(campaign=campaign,
                                                          defaults={"account_id": campaign.account_id})
    return track


def tracks_by_ids(account: Account, track_ids: list[int]) -> list[CampaignTrack]:
    found = list(CampaignTrack.objects.filter(account=account, pk__in=track_ids).order_by("id"))
    if len(found) != len(set(track_ids)):
        raise NotFound(_("track_id not found"))
    return found


@dataclass
class SendFigures:
    queued: int
    sent: int
    failed: int
    rejected: int  # refused before sending (invalid, suppressed, ...: the campaign's skips)


def send_figures(campaign) -> SendFigures:
    """Sent and failed: the campaign's own counts once it ended, else the statistics
    counters kept as outcomes are recorded (hub.stats: a handful of counter rows per hour,
    where counting a running 1M campaign's rows took 270 ms)."""
    rejected = sum(int(v) for k, v in (campaign.skipped or {}).items() if k in ("invalid", "suppressed"))
    if campaign.state in ENDED and campaign.time_end is not None:
        return SendFigures(campaign.queued, campaign.sent_count, campaign.failed_count, rejected)
    # The model by name: hub.stats reads the campaigns app, which calls this app (a cycle).
    counts = apps.get_model("stats", "Tally").objects.filter(campaign_id=campaign.pk).aggregate(
        n_sent=Sum("sent"), n_failed=Sum("failed"))
    return SendFigures(campaign.queued, counts["n_sent"] or 0, counts["n_failed"] or 0, rejected)


def ratio(part: int, whole: int) -> str:
    """A percentage with two decimals and no sign ("12.50"); "0.00" when nothing was sent."""
    return f"{(100.0 * part / whole):.2f}" if whole else "0.00"


def link_in(tracks: list[CampaignTrack], link_id: int) -> Link:
    found = Link.objects.filter(pk=link_id, campaign_id__in=[t.campaign_id for t in tracks]).first()
    if found is None:
        raise NotFound(_("link not found"))
    return found


def links(campaign, link_id: int | None = None) -> list[Link]:
    found = Link.objects.filter(campaign=campaign)
    if link_id is not None:
        found = found.filter(pk=link_id)
        if not found.exists():
            raise NotFound(_("link not found"))
    return list(found.order_by("id"))


def _chunks(queryset, chunk: int = CHUNK) -> Iterator:
    """Rows in primary-key order, read CHUNK at a time (flat memory at 1M recipients): each
    chunk's ids first, which the (campaign, id) index covers, then those rows by primary
    key. Whole rows after an id, by the campaign, make MariaDB walk the campaign's index
    entries from the first one (hub.contacts.store.page_after says why): quadratic."""
    last = 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:chunk])
        if not ids:
            return
        yield from queryset.filter(pk__in=ids).order_by("pk")
        if len(ids) < chunk:
            return
        last = ids[-1]


def recipients(campaign, *, clicked_only: bool = False, link_id: int | None = None,
               recipient_id: int | None = None) -> Iterator[Recipient]:
    """The campaign's recipients who opened or clicked (3.2, 3.4), streamed."""
    found = Recipient.objects.filter(campaign=campaign)
    if clicked_only:
        found = found.filter(click_total__gt=0)
    if link_id is not None:
        found = found.filter(clicks__link_id=link_id, clicks__click_total__gt=0)
    if recipient_id is not None:
        found = found.filter(pk=recipient_id)
    return _chunks(found)


def link_clicks(campaign, link_id: int | None = None) -> Iterator[LinkClick]:
    """Per recipient and link (3.3), streamed."""
    found = LinkClick.objects.filter(campaign=campaign).select_related("link", "recipient")
    if link_id is not None:
        found = found.filter(link_id=link_id)
    return _chunks(found)


def recipient_page(campaign, after: int, limit: int, *, clicked_only: bool = False,
                   link_id: int | None = None) -> list[Recipient]:
    """One page of recipients after the id `after` (cursor paging for the native API)."""
    found = Recipient.objects.filter(campaign=campaign, pk__gt=after)
    if clicked_only:
        found = found.filter(click_total__gt=0)
    if link_id is not None:
        found = found.filter(clicks__link_id=link_id, clicks__click_total__gt=0)
    return list(found.order_by("pk")[:limit])


def click_page(campaign, after: int, limit: int, link_id: int | None = None) -> list[LinkClick]:
    found = LinkClick.objects.filter(campaign=campaign, pk__gt=after).select_related("link", "recipient")
    if link_id is not None:
        found = found.filter(link_id=link_id)
    return list(found.order_by("pk")[:limit])
