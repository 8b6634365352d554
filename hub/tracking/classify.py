"""Honest opens: which opens and clicks were made by machines, not people.

A hit is a *machine* hit when the first of these rules that matches says so (the rule's name
is kept as the reason; docs/tracking.md explains each one):

| reason          | rule                                                                        |
|-----------------|-----------------------------------------------------------------------------|
| head_request    | the request was HEAD (link checkers; a browser GETs)                        |
| no_user_agent   | no User-Agent header at all                                                 |
| gmail_proxy     | Gmail's image proxy: "GoogleImageProxy" or "ggpht.com" in the User-Agent    |
| yahoo_proxy     | Yahoo Mail's image proxy: "YahooMailProxy" in the User-Agent                |
| apple_mpp       | Apple Mail Privacy Protection: the User-Agent is exactly "Mozilla/5.0" (the |
|                 | prefetcher's), or the address is in Apple's 17.0.0.0/8                      |
| microsoft_eop   | an address of Exchange Online Protection (Outlook.com / Microsoft 365 link  |
|                 | and attachment scanning): 40.92.0.0/15, 40.107.0.0/16, 52.100.0.0/14,       |
|                 | 104.47.0.0/17                                                               |
| scanner_agent   | a known security gateway, crawler or HTTP library in the User-Agent         |
|                 | (SCANNER_AGENTS)                                                            |
| too_soon        | less than HUB_TRACK_SCANNER_SECONDS (default 10) after the message was      |
|                 | delivered (SendLog.sent_at): gateways open and click on arrival             |
| click_burst     | (clicks, decided by the processor over a recipient's clicks) clicks on      |
|                 | several different links within HUB_TRACK_BURST_SECONDS: see burst_threshold |

Nothing else is a machine: a real person behind a corporate proxy is counted as a person.
Machine hits are counted and reported beside human ones, never mixed in."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
MICROSOFT_EOP_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17"))
SCANNER_AGENTS = re.compile(
    r"barracuda|mimecast|proofpoint|symantec|messagelabs|trend ?micro|fireeye|forcepoint|sophos|ironport"
    r"|zscaler|check ?point|bitdefender|kaspersky|safelinks|urldefense|mailscanner|spamtitan|hornetsecurity"
    r"|python-requests|python-urllib|aiohttp|curl/|wget/|go-http-client|okhttp|java/|libwww|httpclient"
    r"|headlesschrome|phantomjs|scrapy|crawler|spider|(?<!cu)bot[/;) ]|bot$|facebookexternalhit|slackbot",
    re.IGNORECASE)

HUMAN = ""


@dataclass(frozen=True)
class Facts:
    """What a hit tells: the request and the time since its message was delivered."""

    user_agent: str
    ip: str
    head: bool = False
    seconds_after_send: float | None = None


def _in(ip: str, networks: tuple) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


@lru_cache(maxsize=4096)
def _by_agent_and_ip(user_agent: str, ip: str) -> str:
    ua = user_agent.strip()
    if not ua:
        return "no_user_agent"
    if "GoogleImageProxy" in ua or "ggpht.com" in ua:
        return "gmail_proxy"
    if "YahooMailProxy" in ua:
        return "yahoo_proxy"
    if ua == "Mozilla/5.0" or _in(ip, APPLE_NETWORKS):
        return "apple_mpp"
    if _in(ip, MICROSOFT_EOP_NETWORKS):
        return "microsoft_eop"
    if SCANNER_AGENTS.search(ua):
        return "scanner_agent"
    return HUMAN


def machine_reason(facts: Facts) -> str:
    """The rule that makes this hit a machine's, or "" (HUMAN) for a person's."""
    if facts.head:
        return "head_request"
    reason = _by_agent_and_ip(facts.user_agent, facts.ip)
    if reason:
        return reason
    if facts.seconds_after_send is not None and facts.seconds_after_send < settings.HUB_TRACK_SCANNER_SECONDS:
        return "too_soon"
    return HUMAN


def burst_threshold(campaign_links: int) -> int:
    """Distinct links clicked within HUB_TRACK_BURST_SECONDS that make the clicks a machine's:
    HUB_TRACK_BURST_LINKS (3), or every link of a campaign with fewer, but at least 2 (one
    link clicked twice quickly is a double click, not a scanner)."""
    return max(2, min(settings.HUB_TRACK_BURST_LINKS, campaign_links))


def bursts(clicks: list[tuple[float, int]], threshold: int, window: float) -> set[int]:
    """Indexes into `clicks` ((time in seconds, link id), sorted by time) of the clicks that
    belong to a burst: `threshold` distinct links or more within `window` seconds."""
    flagged: set[int] = set()
    start = 0
    for end in range(len(clicks)):
        while clicks[end][0] - clicks[start][0] > window:
            start += 1
        if len({link for _t, link in clicks[start:end + 1]}) >= threshold:
            flagged.update(range(start, end + 1))
    return flagged
