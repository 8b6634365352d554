"""Tracking a campaign mail: its links rewritten to signed click URLs and an open pixel added,
for campaigns with track_status 1 (pixel only) or 2 (pixel and links).

Called by the campaign renderer (hub.campaigns.render) once per recipient with the rendered
HTML, so it must be cheap: the template's link table is built once per (campaign, template
revision) in each process (reading its hrefs, creating the `Link` rows), the base URL once
per CACHE_SECONDS; per message it is one regex pass over the HTML and one HMAC per link.

Which links are tracked: `<a href="...">` whose target is http(s). Left alone: mailto:,
tel:, sms:, javascript:, `#anchors`, relative links, the unsubscribe and web-view links
(`{{unsubscribe_url}}`, `{{webview_url}}`, or a link to the hub's own /unsubscribe/ page).

The link table and the per-message rewrite use the same expression (ANCHOR_HREF) over the
template source and the rendered HTML, so they always agree on what a link is; a link the
table does not hold is never rewritten (so no URL can redirect to a target we did not sign).
A link whose href holds a placeholder (`https://shop.example/?u={{email}}`) differs per
recipient: its table entry keeps the href as written, and the click URL also carries the
recipient's target, signed (tokens.py)."""

from __future__ import annotations

import hashlib
import html as html_lib
import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from django.conf import settings
from django.db import IntegrityError, transaction

from hub.mailtemplates.personalize import PLACEHOLDER

from . import tokens
from .models import Link, TrackDomain

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
# An <a ...> tag's href attribute, quoted with " or '. Group 1: everything before the value,
# groups 2/3: the value (raw, as written in the HTML).
ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\shref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
SKIP_PLACEHOLDERS = frozenset({"unsubscribe_url", "webview_url"})
OWN_PAGES = ("/unsubscribe/", "/subscribe/confirm/", "/view/")


@dataclass
class Table:
    """A template's tracked links in one campaign: raw href -> link id, and for personal
    links (raw href pattern, link id)."""

    static: dict[str, int] = field(default_factory=dict)
    personal: list[tuple[re.Pattern, int]] = field(default_factory=list)


_tables: dict[tuple, Table] = {}
_bases: dict[int, tuple[float, str]] = {}


def clear_caches() -> None:
    _tables.clear()
    _bases.clear()


def is_trackable_target(target: str) -> bool:
    """http(s) links only, and never the hub's own public pages (unsubscribe, opt-in
    confirmation, web view): a personal link that is only a placeholder must not catch them."""
    lowered = target.strip().lower()
    if not lowered.startswith(("http://", "https://")):
        return False
    public = settings.HUB_PUBLIC_URL.rstrip("/").lower()
    return not (public and lowered.startswith(tuple(public + page for page in OWN_PAGES)))


def source_links(source: str) -> list[tuple[str, bool]]:
    """(raw href, personal) of each link of a template's HTML that is tracked, in order,
    each once."""
    seen: dict[str, bool] = {}
    for match in ANCHOR_HREF.finditer(source):
        raw = match.group(2) if match.group(2) is not None else match.group(3)
        if raw in seen:
            continue
        names = [m.group(1) for m in PLACEHOLDER.finditer(raw)]
        if any(name in SKIP_PLACEHOLDERS for name in names):
            continue
        if names:
            literal_start = PLACEHOLDER.split(raw)[0]
            # Starts with a placeholder: the scheme is known per recipient only (checked then).
            if literal_start and not is_trackable_target(html_lib.unescape(literal_start) + "x"):
                continue
            seen[raw] = True
        elif is_trackable_target(html_lib.unescape(raw)):
            seen[raw] = False
    return list(seen.items())


def _pattern(raw: str) -> re.Pattern:
    """The rendered forms of a personal href: its literal parts, anything for a placeholder."""
    parts = PLACEHOLDER.split(raw)  # literal, name, default, literal, ...
    return re.compile("".join(re.escape(part) if i % 3 == 0 else "(?:.*?)"
                              for i, part in enumerate(parts) if i % 3 != 2), re.DOTALL)


def _link(campaign_id: int, url: str, personal: bool) -> int:
    digest = hashlib.sha256(url.encode()).hexdigest()
    found = Link.objects.filter(campaign_id=campaign_id, url_hash=digest).values_list("pk", flat=True).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Link.objects.create(campaign_id=campaign_id, url=url, url_hash=digest, personal=personal).pk
    except IntegrityError:  # another worker made it first
        return Link.objects.get(campaign_id=campaign_id, url_hash=digest).pk


def table_for(campaign_id: int, template) -> Table:
    key = (campaign_id, template.pk, template.revision, template.updated_at)
    table = _tables.get(key)
    if table is None:
        table = Table()
        for raw, personal in source_links(template.html):
            link_id = _link(campaign_id, html_lib.unescape(raw), personal)
            if personal:
                table.personal.append((_pattern(raw), link_id))
            else:
                table.static[raw] = link_id
        if len(_tables) > 64:
            _tables.clear()
        _tables[key] = table
    return table


def _origin(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value:
        return ""
    return value if "://" in value else f"{settings.HUB_TRACK_SCHEME}://{value}"


def base_url(campaign) -> str:
    """Scheme and host of the campaign's tracking URLs: its own tracking domain when that is
    a verified one of its account, else the account's default verified domain, else
    HUB_TRACK_DEFAULT_DOMAIN, else HUB_PUBLIC_URL ("" when none is set)."""
    found = _bases.get(campaign.pk)
    if found is not None and time.monotonic() - found[0] < CACHE_SECONDS:
        return found[1]
    verified = TrackDomain.objects.filter(account_id=campaign.account_id, is_cname=True)
    domain = ""
    if campaign.track_domain:
        domain = verified.filter(domain=campaign.track_domain).values_list("domain", flat=True).first() or ""
    if not domain:
        domain = verified.filter(is_default=True).values_list("domain", flat=True).first() or ""
    base = _origin(domain) or _origin(settings.HUB_TRACK_DEFAULT_DOMAIN) or _origin(settings.HUB_PUBLIC_URL)
    if len(_bases) > 256:
        _bases.clear()
    _bases[campaign.pk] = (time.monotonic(), base)
    return base


def pixel_tag(base: str, campaign_id: int, log_id: int) -> str:
    src = f"{base}/t/o/{tokens.open_token(campaign_id, log_id)}.gif"
    return (f'<img src="{src}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px;overflow:hidden" />')


def instrument(html: str, row, campaign, template) -> str:
    """The rendered HTML of `row` (a SendLog row of `campaign`) with its tracking: links (when
    track_status is 2) and the pixel (1 or 2). Unchanged when tracking is off or no base URL
    is configured (a relative pixel would load nothing)."""
    if not campaign.track_status:
        return html
    base = base_url(campaign)
    if not base:
        log.warning("campaign %s tracks but no tracking domain, HUB_TRACK_DEFAULT_DOMAIN or HUB_PUBLIC_URL is set",
                    campaign.pk)
        return html
    campaign_id, log_id = campaign.pk, row.pk
    if campaign.track_status == 2:
        table = table_for(campaign_id, template)
        if table.static or table.personal:
            def rewrite(match: re.Match) -> str:
                raw = match.group(2) if match.group(2) is not None else match.group(3)
                link_id = table.static.get(raw)
                if link_id is not None:
                    url = f"{base}/t/c/{tokens.click_token(campaign_id, log_id, link_id)}"
                else:
                    link_id = next((lid for pattern, lid in table.personal if pattern.fullmatch(raw)), None)
                    target = html_lib.unescape(raw)
                    if link_id is None or not is_trackable_target(target) or len(target) > tokens.MAX_TARGET:
                        return match.group(0)
                    token = tokens.click_token(campaign_id, log_id, link_id, target)
                    url = f"{base}/t/c/{token}?u={quote(target, safe='')}"
                return f'{match.group(1)}"{html_lib.escape(url, quote=True)}"'

            html = ANCHOR_HREF.sub(rewrite, html)
    pixel = pixel_tag(base, campaign_id, log_id)
    ends = list(BODY_END.finditer(html))
    if ends:
        at = ends[-1].start()
        return html[:at] + pixel + html[at:]
    return html + pixel
