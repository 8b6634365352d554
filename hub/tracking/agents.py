"""Browser, OS and device of a user agent (ua-parser, the maintained uap-core rules), and
the location of an IP address from an offline database (MaxMind DB format, read with
maxminddb).

Location: settings.HUB_TRACK_GEOIP_DB is the path of a .mmdb file with city data
(GeoLite2-City, DB-IP's "IP to City Lite", ...); empty = the GeoLite2-City file bundled by
the `maxminddb-geolite2` package (2018 data: good enough for provinces and cities, not for
recent re-allocations; docs/tracking.md says how to use a current one). Names in
HUB_TRACK_GEOIP_LANGUAGE (zh-CN by default), else English: "中国 江苏省 南京"."""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

log = logging.getLogger(__name__)

MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "HarmonyOS", "KaiOS", "Symbian OS",
                       "Firefox OS", "Tizen", "Sailfish", "webOS", "iPadOS"})
MOBILE_DEVICES = ("iPhone", "iPad", "iPod", "Android", "Mobile", "Tablet")


@dataclass(frozen=True)
class Agent:
    browser: str
    os: str
    device: str  # "pc" or "mobile" (V28 3.2)


@lru_cache(maxsize=4096)
def agent(user_agent: str) -> Agent:
    from ua_parser import parse

    result = parse(user_agent or "")
    browser = result.user_agent.family if result.user_agent else ""
    os_name = result.os.family if result.os else ""
    device = result.device.family if result.device else ""
    mobile = os_name in MOBILE_OS or any(word in device for word in MOBILE_DEVICES)
    return Agent(browser[:60] if browser != "Other" else "", os_name[:60] if os_name != "Other" else "",
                 "mobile" if mobile else "pc")


_reader = None
_reader_path: str | None = None
_reader_lock = threading.Lock()


def database_path() -> str:
    configured = settings.HUB_TRACK_GEOIP_DB
    if configured:
        return configured
    try:
        import _maxminddb_geolite2
    except ImportError:
        return ""
    return _maxminddb_geolite2.geolite2_database()


def _open():
    global _reader, _reader_path
    path = database_path()
    if _reader_path != path:
        with _reader_lock:
            if _reader_path != path:
                reader = None
                if path:
                    import maxminddb

                    try:
                        reader = maxminddb.open_database(path)
                    except (OSError, ValueError) as exc:
                        log.error("cannot open the IP location database %s: %s", path, exc)
                _reader, _reader_path = reader, path
    return _reader


def _name(entry: dict | None, language: str) -> str:
    names = (entry or {}).get("names") or {}
    return names.get(language) or names.get("en") or ""


@lru_cache(maxsize=16384)
def _cached(ip: str, path: str, language: str) -> str:
    reader = _open()
    if reader is None:
        return ""
    try:
        record = reader.get(ip)
    except ValueError:
        return ""
    if not record:
        return ""
    parts = [_name(record.get("country"), language)]
    subdivisions = record.get("subdivisions") or []
    if subdivisions:
        parts.append(_name(subdivisions[0], language))
    parts.append(_name(record.get("city"), language))
    seen: list[str] = []
    for part in parts:  # "北京 北京市 北京" -> "中国 北京市"
        if part and not any(part in s or s in part for s in seen):
            seen.append(part)
    return " ".join(seen)[:120]


def location(ip: str) -> str:
    """"Country province city" of a public IP address, "" when unknown or private."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if not address.is_global:
        return ""
    return _cached(str(address), database_path(), settings.HUB_TRACK_GEOIP_LANGUAGE)
