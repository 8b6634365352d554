"""Full-speed campaigns are topped up by their own rows' outcomes: a receiver of hub.events
(`sent`/`failed` of a campaign row) runs a slice of that campaign after the outcome commits,
at most once per HUB_CAMPAIGN_TOPUP_SECONDS per campaign and process (plus one trailing
top-up for the outcomes a window skipped). No task waits for room: while a campaign's
backlog drains, its outcomes arrive many times a second and each top-up refills it
(dispatch.room's hysteresis keeps the transactions few); after the last outcome of a burst
the trailing top-up looks once more, so the backlog never runs dry unnoticed. Only retries
left, or a killed worker's lost timer: the sweep looks every minute.

Why here and not a queued task: a task would wait behind the drains for a free worker (a
drain runs for up to HUB_BATCH_TIME_BUDGET_SECONDS), long enough to empty the backlog. The
slice runs in the delivering thread, after its outcome's transaction (never inside it), and
is bounded (HUB_CAMPAIGN_TOPUP_BUDGET_SECONDS); a failure is logged, never the delivery's."""

from __future__ import annotations

import functools
import logging
import threading
import time

from django.conf import settings
from django.db import connection, transaction

from hub.events import Event, Kind

from . import dispatch
from .models import Campaign, State

log = logging.getLogger(__name__)

_last: dict[int, float] = {}  # campaign id -> when this process last topped it up
_trailing: set[int] = set()  # campaigns with a trailing top-up scheduled in this process
_timers: dict[int, threading.Timer] = {}  # their timers
_lock = threading.Lock()


def on_event(sender, event: Event, **kwargs) -> None:
    """At most one top-up per campaign per HUB_CAMPAIGN_TOPUP_SECONDS in this process, at
    once (after the outcome commits) for the first outcome of a window and once more at the
    window's end for the outcomes it skipped (trailing): the last outcome of a drained
    backlog is always followed by a top-up, so a campaign cannot stall with nothing queued."""
    cid = event.campaign_id
    if cid is None or event.kind not in (Kind.SENT, Kind.FAILED):
        return
    window = window_seconds()
    at = time.monotonic()
    with _lock:
        last = _last.get(cid, float("-inf"))
        if at - last >= window:
            if len(_last) > 1000:
                _last.clear()
            _last[cid] = at
            delay = None
        elif cid not in _trailing:
            _trailing.add(cid)
            delay = last + window - at
        else:
            return
    if delay is None:
        # After the outcome commits (at once when there is no transaction).
        transaction.on_commit(functools.partial(top_up, cid))
    else:
        timer = threading.Timer(delay, _trailing_top_up, args=(cid,))
        timer.daemon = True
        with _lock:
            _timers[cid] = timer
        timer.start()


def window_seconds() -> float:
    """HUB_CAMPAIGN_TOPUP_SECONDS in the campaign's time (dispatch.scaled), like the token
    bucket's second it must stay under. Why: a speed-limited campaign whose backlog is on
    its way is fed by these top-ups alone, each taking at most the bucket's kept tokens; a
    10x-scaled run that scaled the bucket (0.1 s) but not this window (0.25 s) dropped the
    tokens in between and sent at ~70 % of its hour_speed (bench/campaign.py, measured)."""
    return dispatch.scaled(settings.HUB_CAMPAIGN_TOPUP_SECONDS)


def cancel_pending() -> None:
    """Forget this process's top-up windows and cancel its trailing top-ups (the test
    runner, between tests: a timer left from one test must not run in the next one's
    database)."""
    with _lock:
        timers = list(_timers.values())
        _timers.clear()
        _trailing.clear()
        _last.clear()
    for timer in timers:
        timer.cancel()


def _trailing_top_up(campaign_id: int) -> None:
    with _lock:
        if _timers.pop(campaign_id, None) is None:
            return  # cancelled
        _trailing.discard(campaign_id)
        _last[campaign_id] = time.monotonic()
    try:
        top_up(campaign_id)
    finally:
        connection.close()  # this thread's own connection


def top_up(campaign_id: int) -> str:
    try:
        token = (Campaign.objects.filter(pk=campaign_id, state=State.SENDING)
                 .values_list("run_token", flat=True).first())
        if not token:
            return "stopped"
        return dispatch.run(campaign_id, token, budget=settings.HUB_CAMPAIGN_TOPUP_BUDGET_SECONDS)
    except Exception:
        log.exception("campaign %s: top-up failed; the next outcome or the sweep tries again", campaign_id)
        return "failed"
