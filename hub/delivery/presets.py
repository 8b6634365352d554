"""Built-in destination presets for the big receiving providers (direct delivery).

Why these numbers: none of these providers publishes a hard limit for senders; they answer
"too many" (421 / 4xx) when a sender goes faster than they like for its reputation, and the
adaptive backoff (hub.delivery.destinations) follows those answers. The presets only keep a
new sender from opening the door too wide at the start: the Chinese providers (QQ, NetEase)
are known to be the strictest about connections per IP, so they start lowest. Every value is
editable in the admin (Destinations); "reset to preset" puts these back.

Grouping by provider: a destination matches by recipient domain first, then by MX host, so
a company domain hosted at Google Workspace or Microsoft 365 (MX under google.com /
protection.outlook.com) shares the provider's limits and backoff, as the provider counts it.
Migration 0012_direct_delivery seeds these rows."""

from __future__ import annotations

from typing import TypedDict


class Preset(TypedDict):
    domains: str
    mx_patterns: str
    max_connections: int
    rate_per_minute: int


PRESETS: dict[str, Preset] = {
    "qq": {"domains": "qq.com foxmail.com vip.qq.com",
           "mx_patterns": ".qq.com", "max_connections": 3, "rate_per_minute": 60},
    "netease": {"domains": "163.com 126.com yeah.net vip.163.com vip.126.com 188.com",
                "mx_patterns": ".163.com .126.com .netease.com .yeah.net", "max_connections": 3,
                "rate_per_minute": 60},
    "gmail": {"domains": "gmail.com googlemail.com",
              "mx_patterns": ".google.com .googlemail.com", "max_connections": 10, "rate_per_minute": 600},
    "outlook": {"domains": "outlook.com hotmail.com live.com msn.com hotmail.co.uk live.cn outlook.cn",
                "mx_patterns": ".outlook.com .hotmail.com", "max_connections": 5, "rate_per_minute": 300},
    "yahoo": {"domains": "yahoo.com ymail.com rocketmail.com aol.com yahoo.co.uk yahoo.com.tw",
              "mx_patterns": ".yahoodns.net", "max_connections": 5, "rate_per_minute": 300},
}
