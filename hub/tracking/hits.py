"""What the public endpoints do after the signature checked out: append one raw hit (one
INSERT, no read) and make sure a processor will look at it soon. Everything slow (user
agent, location, counters, events) is the processor's (process.py)."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import Hit
from .tokens import Signed

log = logging.getLogger(__name__)

PROCESS_TASK = "hub.tracking.tasks.process_hits"
_wake_lock = threading.Lock()
_woke_at = 0.0


_INSERT: str | None = None


def _insert_sql() -> str:
    # The one statement every hit pays for, built once: the ORM's INSERT compiles the query
    # again for each call (a third of the endpoint's own time).
    global _INSERT
    if _INSERT is None:
        q = connection.ops.quote_name
        names = ("kind", "campaign_id", "log_id", "link_id", "url", "at", "ip", "user_agent", "head")
        _INSERT = (f"INSERT INTO {q(Hit._meta.db_table)} ({', '.join(q(n) for n in names)}) "
                   f"VALUES ({', '.join(['%s'] * len(names))})")
    return _INSERT


def record(kind: str, signed: Signed, ip: str, user_agent: str, *, head: bool = False) -> None:
    at = Hit._meta.get_field("at").get_db_prep_value(timezone.now(), connection)
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(), [kind, signed.campaign_id, signed.log_id, signed.link_id, signed.target, at,
                                       (ip or "")[:45], (user_agent or "")[:512], head])
    wake()


def wake() -> bool:
    """Queue a processor run, at most once per HUB_TRACK_WAKE_SECONDS in this process (a
    burst of hits costs one task, not one per hit). A lost or skipped wake-up is caught by
    the every-minute schedule. Returns True when it queued one."""
    global _woke_at
    now = time.monotonic()
    with _wake_lock:
        if now - _woke_at < settings.HUB_TRACK_WAKE_SECONDS:
            return False
        _woke_at = now
    try:
        from django_q.tasks import async_task

        async_task(PROCESS_TASK, task_name="tracking-process")
    except Exception:  # the hit is stored: the schedule will count it; never fail the pixel
        log.exception("tracking: could not queue the processor")
        return False
    return True


def reset_wake() -> None:
    global _woke_at
    _woke_at = 0.0


# --- click targets -------------------------------------------------------------------------

# link id -> (campaign id, url as written, personal). Links never change once made, so a
# target read once is kept (bounded); the hot path reads nothing after the first click.
_targets: dict[int, tuple[int, str, bool]] = {}


def clear_caches() -> None:
    _targets.clear()


def click_target(signed: Signed) -> str | None:
    """Where a verified click goes: the link's stored URL, or for a personal link the signed
    target. None when the link is gone or does not belong to the campaign the URL names."""
    found = _targets.get(signed.link_id)
    if found is None:
        from .models import Link

        row = Link.objects.filter(pk=signed.link_id).values_list("campaign_id", "url", "personal").first()
        if row is None:
            return None
        if len(_targets) > 100_000:
            _targets.clear()
        found = _targets[signed.link_id] = row
    campaign_id, url, personal = found
    if campaign_id != signed.campaign_id:
        return None
    if personal:
        return signed.target or None
    return None if signed.target else url
