"""Direct delivery's destinations: which one a recipient domain belongs to, whether a
transaction may go now (paused, paced), and the adaptive backoff.

Matching: a destination whose `domains` lists the recipient domain; else one whose
`mx_patterns` matches the domain's first MX host (so Google Workspace or Microsoft 365
customers share gmail's / outlook's limits); else a destination of the domain's own, created
at its first delivery with HUB_DIRECT_DEFAULT_CONNECTIONS / HUB_DIRECT_DEFAULT_RATE. The
patterns are read once per HUB_DIRECT_MATCH_CACHE_SECONDS per process (an admin's edit
applies within that time); the state is read from the row for every transaction.

Pacing: a generic cell rate algorithm on the row (`next_send_at`), taken under the row's
lock like hub.delivery.throttle, so every worker and machine shares it; bursts of up to one
second's worth. Connections: hub.delivery.slots (DestinationSlot), at most `connection_limit`.

Adaptive backoff (AIMD): a "too many" / "try later" reply (421, or a 4xx whose text says so)
halves the destination's connections and rate (an unlimited rate becomes
HUB_DIRECT_BACKOFF_START_RATE) and pauses it HUB_DIRECT_BACKOFF_SECONDS x 2^(level-1);
further such replies while it is paused are recorded but cut nothing more (they are the
same burst). Every HUB_DIRECT_RECOVERY_EVERY deliveries give back one connection and a tenth
of the rate and lower the level, until the configured limits hold again. The mail waits
meanwhile (rows `retrying`, no attempt counted), it never fails for it."""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import Destination, DestinationDeferral
from .presets import PRESETS

MATCH_CACHE_SECONDS = 30.0

# What receivers say when a sender goes too fast (Gmail 421-4.7.0 / 450-4.2.1 "unusual
# rate", Yahoo 421 4.7.0 [TSS04], Outlook 451 4.7.500 "server busy", QQ/NetEase "frequency
# limited" / 请稍后重试, Postfix "too many connections", ...). 421 always counts.
_THROTTLED = re.compile(
    r"too many|try (again )?later|rate limit|at a rate|rate exceeded|throttl|temporarily deferred|"
    r"frequen|exceed|\bTSS\d+|server busy|busy|slow down|4\.7\.500|RP:TRC|MI:SFQ|请稍后|频率|过于频繁|太多",
    re.IGNORECASE)


def throttled(code: int | None, text: str) -> bool:
    """A reply that asks the sender to slow down (not a problem with the message)."""
    if code is None:
        return False
    return code == 421 or (400 <= code < 500 and bool(_THROTTLED.search(text or "")))


@dataclass
class _Matchers:
    expires: float
    by_domain: dict[str, int]
    by_mx: list[tuple[str, int]]  # (pattern, id): ".google.com" = any host under it


_matchers: _Matchers | None = None
_own: dict[str, int] = {}  # recipient domain -> its own destination's id
_lock = threading.Lock()


def clear_cache() -> None:
    global _matchers
    with _lock:
        _matchers = None
        _own.clear()


def _words(text: str) -> list[str]:
    return [w.strip().rstrip(".").lower() for w in re.split(r"[\s,;]+", text or "") if w.strip()]


def _load() -> _Matchers:
    global _matchers
    now = time.monotonic()
    with _lock:
        if _matchers is not None and _matchers.expires > now:
            return _matchers
    by_domain: dict[str, int] = {}
    by_mx: list[tuple[str, int]] = []
    for pk, domains, patterns in (Destination.objects.exclude(domains="", mx_patterns="")
                                  .order_by("id").values_list("pk", "domains", "mx_patterns")):
        for domain in _words(domains):
            by_domain.setdefault(domain, pk)
        by_mx += [(("." + p.lstrip("*.")) if p.startswith(("*", ".")) else p, pk) for p in _words(patterns)]
    loaded = _Matchers(now + MATCH_CACHE_SECONDS, by_domain, by_mx)
    with _lock:
        _matchers = loaded
    return loaded


def _mx_match(host: str, patterns: list[tuple[str, int]]) -> int | None:
    for pattern, pk in patterns:
        if host == pattern or (pattern.startswith(".") and host.endswith(pattern)):
            return pk
    return None


def find(domain: str, mx_host: str) -> int:
    """The id of the destination for recipient `domain` whose best MX host is `mx_host`."""
    matchers = _load()
    found = matchers.by_domain.get(domain)
    if found is None:
        found = _mx_match(mx_host, matchers.by_mx)
    if found is not None:
        return found
    with _lock:
        found = _own.get(domain)
    if found is None:
        found = _own_destination(domain)
        with _lock:
            if len(_own) > 10_000:
                _own.clear()
            _own[domain] = found
    return found


def _own_destination(domain: str) -> int:
    defaults = {"max_connections": max(1, settings.HUB_DIRECT_DEFAULT_CONNECTIONS),
                "rate_per_minute": max(0, settings.HUB_DIRECT_DEFAULT_RATE)}
    try:
        with transaction.atomic():
            return Destination.objects.get_or_create(name=domain, defaults=defaults)[0].pk
    except IntegrityError:  # another worker created it at the same moment
        return Destination.objects.get(name=domain).pk


def admit(destination_id: int) -> tuple[Destination, float]:
    """May a transaction go to this destination now? (row, 0) when it may (a pacing step
    taken), else (row, seconds to wait): paused after a deferral, or over its rate."""
    # Read first without a lock: most destinations have no rate, and on SQLite a locking
    # transaction takes the database's one write lock.
    dest = Destination.objects.get(pk=destination_id)
    now = timezone.now()
    if dest.paused_until and dest.paused_until > now:
        return dest, (dest.paused_until - now).total_seconds()
    if not dest.rate_limit:
        return dest, 0.0
    with transaction.atomic():
        dest = Destination.objects.select_for_update().get(pk=destination_id)
        now = timezone.now()
        if dest.paused_until and dest.paused_until > now:
            return dest, (dest.paused_until - now).total_seconds()
        rate = dest.rate_limit
        if not rate:
            return dest, 0.0
        interval = 60.0 / rate
        tolerance = interval * (max(1, math.ceil(rate / 60)) - 1)  # one second's worth at once
        due = max(dest.next_send_at or now, now)
        ahead = (due - now).total_seconds()
        if ahead > tolerance:
            return dest, ahead - tolerance
        dest.next_send_at = due + timedelta(seconds=interval)
        Destination.objects.filter(pk=dest.pk).update(next_send_at=dest.next_send_at)
        return dest, 0.0


def deferred(destination_id: int, host: str, code: int | None, reply: str) -> float:
    """The destination said "too many": slow it down (once per burst), record the reply.
    Returns the seconds until it may be tried again."""
    now = timezone.now()
    with transaction.atomic():
        dest = Destination.objects.select_for_update().get(pk=destination_id)
        changes: dict = {"last_deferral_at": now, "last_deferral": f"{code or ''} {reply}".strip()[:2000],
                         "deferrals_total": dest.deferrals_total + 1}
        if not (dest.paused_until and dest.paused_until > now):
            level = dest.backoff_level + 1
            rate = dest.rate_limit
            pause = min(settings.HUB_DIRECT_BACKOFF_MAX_SECONDS,
                        settings.HUB_DIRECT_BACKOFF_SECONDS * 2 ** (level - 1))
            changes.update(
                backoff_level=min(level, 30), recovery_successes=0,
                adaptive_connections=max(1, dest.connection_limit // 2),
                adaptive_rate=max(1.0, rate / 2) if rate else float(max(1, settings.HUB_DIRECT_BACKOFF_START_RATE)),
                paused_until=now + timedelta(seconds=pause), next_send_at=None)
        Destination.objects.filter(pk=dest.pk).update(**changes)
        DestinationDeferral.objects.create(destination_id=dest.pk, at=now, host=host[:255], smtp_code=code,
                                           reply=(reply or "")[:2000])
        _trim_deferrals(dest.pk)
        until = changes.get("paused_until") or dest.paused_until or now
    return max(0.0, (until - now).total_seconds())


def _trim_deferrals(destination_id: int) -> None:
    keep = max(1, settings.HUB_DIRECT_DEFERRALS_KEPT)
    oldest_kept = (DestinationDeferral.objects.filter(destination_id=destination_id).order_by("-at", "-id")
                   .values_list("id", flat=True)[keep - 1:keep])
    oldest = list(oldest_kept)
    if oldest:
        DestinationDeferral.objects.filter(destination_id=destination_id, id__lt=oldest[0]).delete()


def delivered(dest: Destination) -> None:
    """A transaction went through: a slowed-down destination recovers step by step.
    Costs nothing for a destination that is not slowed down."""
    if dest.adaptive_connections is None and dest.adaptive_rate is None and not dest.backoff_level:
        return
    with transaction.atomic():
        row = Destination.objects.select_for_update().get(pk=dest.pk)
        successes = row.recovery_successes + 1
        if successes < max(1, settings.HUB_DIRECT_RECOVERY_EVERY):
            Destination.objects.filter(pk=row.pk).update(recovery_successes=successes)
            return
        changes: dict = {"recovery_successes": 0, "backoff_level": max(0, row.backoff_level - 1)}
        if row.adaptive_connections is not None:
            more = row.adaptive_connections + 1
            changes["adaptive_connections"] = None if more >= row.max_connections else more
        if row.adaptive_rate is not None:
            ceiling = row.rate_per_minute or 2 * max(1, settings.HUB_DIRECT_BACKOFF_START_RATE)
            faster = row.adaptive_rate + max(1.0, ceiling / 10)
            changes["adaptive_rate"] = None if faster >= ceiling else faster
        Destination.objects.filter(pk=row.pk).update(**changes)


def load_presets(names: list[str] | None = None, reset: bool = False) -> list[Destination]:
    """Create the built-in presets' destinations that are missing (hub.delivery.presets);
    with `reset`, put the preset values back on existing ones (the adaptive state stays)."""
    done = []
    for name in names or list(PRESETS):
        values = {"preset": name, **PRESETS[name]}
        dest, created = Destination.objects.get_or_create(name=name, defaults=values)
        if reset and not created:
            Destination.objects.filter(pk=dest.pk).update(**values)
            dest.refresh_from_db()
        done.append(dest)
    clear_cache()
    return done
