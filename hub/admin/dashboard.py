"""The admin dashboard: message counts by status (today, 7 and 30 days), a per-day chart,
volume per app and per SMTP server, the queue, and servers that are failing.

Days are the hub's local days (TIME_ZONE). Grouping by day is done with a CASE over the
day boundaries instead of the database's time zone functions, so it gives the same answer
on SQLite and on MariaDB without the time zone tables loaded. Everything is a handful of
grouped queries over covering indexes that start with created_at; counts are by creation time (when the hub
accepted the message). The send log figures are cached for a minute (CACHE_SECONDS), then
recomputed in the background while the page shows the previous ones (STALE_SECONDS)."""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django import db
from django.conf import settings
from django.core.cache import cache
from django.db.models import Case, Count, IntegerField, Min, Q, QuerySet, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from ..models import App, SendLog, SmtpServer
from .common import has_field, humanize_age

log = logging.getLogger(__name__)

DAYS = 30
S = SendLog.Status
# The statuses shown on the dashboard, and their colours in the chart.
IN_FLIGHT = (S.QUEUED, S.SENDING, S.RETRYING)
COLORS = {S.SENT: "#16a34a", S.FAILED: "#dc2626", "in_flight": "#f59e0b"}


def day_bounds(days: int = DAYS, now: datetime.datetime | None = None) -> list[datetime.datetime]:
    """days+1 local midnights: the start of each of the last `days` days, then tomorrow."""
    tz = timezone.get_current_timezone()
    today = timezone.localtime(now or timezone.now(), tz).date()
    first = today - datetime.timedelta(days=days - 1)
    return [datetime.datetime.combine(first + datetime.timedelta(days=i), datetime.time(), tz)
            for i in range(days + 1)]


def daily_counts_query(bounds: list[datetime.datetime]) -> QuerySet:
    """Rows of (day index, status, n) between the bounds; read from the sendlog_created_app
    index alone (created_at and status are both in it)."""
    day = Case(*[When(created_at__lt=bounds[i + 1], then=Value(i)) for i in range(len(bounds) - 1)],
               output_field=IntegerField())
    return (SendLog.objects.filter(created_at__gte=bounds[0], created_at__lt=bounds[-1])
            .annotate(day=day).values("day", "status").annotate(n=Count("id")).order_by())


def daily_counts(bounds: list[datetime.datetime]) -> dict[tuple[int, str], int]:
    """{(day index, status): count} for the days between the bounds, in one query."""
    return {(r["day"], r["status"]): r["n"] for r in daily_counts_query(bounds)}


@dataclass
class Window:
    label: str
    first_day: int  # index into the days


def status_table(counts: dict[tuple[int, str], int], days: int = DAYS) -> list[dict]:
    windows = [Window(_("Today"), days - 1), Window(_("7 days"), days - 7), Window(_("30 days"), 0)]
    table = []
    for status in (S.SENT, S.FAILED, S.QUEUED, S.RETRYING, S.SENDING):
        values = [sum(n for (d, s), n in counts.items() if s == status and d >= w.first_day) for w in windows]
        table.append({"status": status, "label": S(status).label, "values": values})
    return table


def chart(bounds: list[datetime.datetime], counts: dict[tuple[int, str], int]) -> tuple[str, str]:
    """(data, options) JSON for unfold's bundled Chart.js: a stacked bar per day."""
    labels = [formats.date_format(b, "m-d") for b in bounds[:-1]]
    days = range(len(bounds) - 1)
    series = [
        (_("Sent"), [counts.get((d, S.SENT), 0) for d in days], COLORS[S.SENT]),
        (_("Failed"), [counts.get((d, S.FAILED), 0) for d in days], COLORS[S.FAILED]),
        (_("In progress"), [sum(counts.get((d, s), 0) for s in IN_FLIGHT) for d in days], COLORS["in_flight"]),
    ]
    data = {"labels": labels, "datasets": [
        {"label": label, "data": values, "backgroundColor": color, "borderRadius": 3, "maxBarThickness": 18}
        for label, values, color in series
    ]}
    options = {
        "animation": False, "responsive": True, "maintainAspectRatio": False,
        "plugins": {"legend": {"display": True, "position": "top", "align": "end",
                               "labels": {"boxWidth": 8, "boxHeight": 8, "usePointStyle": True}}},
        "scales": {"x": {"stacked": True, "grid": {"display": False}},
                   "y": {"stacked": True, "beginAtZero": True, "ticks": {"precision": 0}}},
    }
    return json.dumps(data), json.dumps(options)


def queue_state(now: datetime.datetime) -> dict:
    rows = (SendLog.objects.filter(status__in=IN_FLIGHT).values("status")
            .annotate(n=Count("id"), oldest=Min("created_at")).order_by())
    by_status = {r["status"]: r for r in rows}
    waiting = [by_status[s]["oldest"] for s in (S.QUEUED, S.RETRYING) if s in by_status]
    oldest = min(waiting) if waiting else None
    return {
        "queued": by_status.get(S.QUEUED, {}).get("n", 0),
        "retrying": by_status.get(S.RETRYING, {}).get("n", 0),
        "sending": by_status.get(S.SENDING, {}).get("n", 0),
        "depth": sum(r["n"] for r in rows),
        "oldest": oldest,
        "oldest_age": humanize_age(now - oldest) if oldest else "-",
        "oldest_seconds": (now - oldest).total_seconds() if oldest else 0,
    }


def volume_query(since: datetime.datetime, until: datetime.datetime, key: str) -> QuerySet:
    """Totals per app_id or smtp_server_id between the two times; read from the covering
    index (created_at, app|smtp_server, status). The upper bound changes nothing in the
    result (no row is created in the future) but tells SQLite's planner, which has no
    statistics, that the range is narrow: without it, it walks the whole foreign key index
    to get the rows already grouped."""
    return (
        SendLog.objects.filter(created_at__gte=since, created_at__lt=until).values(key)
        .annotate(total=Count("id"), sent=Count("id", filter=Q(status=S.SENT)),
                  failed=Count("id", filter=Q(status=S.FAILED)))
        .order_by("-total")
    )


def _volume(since: datetime.datetime, until: datetime.datetime, key: str, limit: int = 10) -> list[dict]:
    return list(volume_query(since, until, key)[:limit])


def app_volume(since: datetime.datetime, until: datetime.datetime) -> list[dict]:
    rows = _volume(since, until, "app_id")
    apps = App.objects.in_bulk([r["app_id"] for r in rows])
    return [{**r, "name": str(apps.get(r["app_id"], r["app_id"])),
             "url": reverse("admin:hub_sendlog_changelist") + f"?app__id__exact={r['app_id']}"} for r in rows]


def server_volume(since: datetime.datetime, until: datetime.datetime) -> list[dict]:
    rows = _volume(since, until, "smtp_server_id")
    servers = SmtpServer.objects.in_bulk([r["smtp_server_id"] for r in rows if r["smtp_server_id"]])
    result = []
    for r in rows:
        sid = r["smtp_server_id"]
        name = str(servers[sid]) if sid in servers else _("(not delivered yet)")
        url = reverse("admin:hub_sendlog_changelist") + (f"?smtp_server__id__exact={sid}" if sid else "")
        result.append({**r, "name": name, "url": url})
    return result


def failing_servers() -> list[dict] | None:
    """EXTENSION POINT (reliability): servers whose last delivery attempt failed, from the
    health fields delivery keeps on SmtpServer. None when this version has no such fields."""
    if not has_field(SmtpServer, "failing_since"):
        return None
    servers = SmtpServer.objects.filter(failing_since__isnull=False).order_by("failing_since")
    return [{
        "name": str(s), "enabled": s.enabled, "last_error": s.last_error,
        "last_error_at": getattr(s, "last_error_at", None), "failing_since": s.failing_since,
        "url": reverse("admin:hub_smtpserver_change", args=[s.pk]),
    } for s in servers]


# The send log aggregates are fresh for this long (Django's cache, per process with the
# default LocMemCache): reloading the home page, or several people on it, costs nothing more.
CACHE_SECONDS = 60
# After that they are recomputed in the background while the page shows the older figures
# (up to this old): at a million messages the queries take 2 to 3 s (bench/stats_reports.py
# "admin dashboard, cold"), which only the first view after a start (or a forget_cached) pays.
STALE_SECONDS = 3600


def traffic_data(now: datetime.datetime) -> dict:
    """The figures that scan the send logs (the expensive part of the page)."""
    bounds = day_bounds(DAYS, now)
    counts = daily_counts(bounds)
    chart_data, chart_options = chart(bounds, counts)
    week = bounds[DAYS - 7]
    table = status_table(counts)
    today = {row["status"]: row["values"][0] for row in table}
    return {
        "status_table": table,
        "today": today,
        "chart_data": chart_data,
        "chart_options": chart_options,
        "queue": queue_state(now),
        "apps": app_volume(week, bounds[-1]),
        "servers": server_volume(week, bounds[-1]),
    }


def cache_key(language: str | None = None) -> str:
    # Labels and day boundaries depend on the language and the time zone of the request.
    return f"hub:dashboard:v1:{language or get_language()}:{timezone.get_current_timezone_name()}"


def forget_cached() -> None:
    """Drop the cached figures, after the admin itself made a message (test email, resend):
    whoever just did it expects to see it counted. Per process with LocMemCache; other
    processes show it within CACHE_SECONDS."""
    cache.delete_many([cache_key(code) for code, _name in settings.LANGUAGES])


def dashboard_data(now: datetime.datetime | None = None, *, cached: bool = False) -> dict:
    """Everything the dashboard shows. With cached=True the send log figures may be up to
    CACHE_SECONDS old, or older while a background refresh runs (STALE_SECONDS at most);
    the failing servers (a tiny table) are always read fresh."""
    key = cache_key()
    entry = cache.get(key) if cached else None
    if entry is None:
        traffic = traffic_data(now or timezone.now())
        if cached:
            cache.set(key, {"at": time.time(), "traffic": traffic}, STALE_SECONDS)
    else:
        traffic = entry["traffic"]
        if time.time() - entry["at"] >= CACHE_SECONDS:
            refresh_in_background(key)
    return {
        **traffic,
        "failing": failing_servers(),
        "logs_url": reverse("admin:hub_sendlog_changelist"),
    }


# The background refreshes running in this process, by cache key (one at a time per key).
_refreshing: dict[str, threading.Thread] = {}
_refreshing_lock = threading.Lock()


def refresh_in_background(key: str) -> threading.Thread | None:
    """Recompute the figures of `key` in a thread of this process (same language and time
    zone as the request); None when one is already running."""
    language, zone = get_language(), timezone.get_current_timezone()

    def refresh() -> None:
        try:
            with translation.override(language), timezone.override(zone):
                cache.set(key, {"at": time.time(), "traffic": traffic_data(timezone.now())}, STALE_SECONDS)
        except Exception:
            log.exception("refreshing the dashboard's figures failed; the page shows older ones")
        finally:
            with _refreshing_lock:
                _refreshing.pop(key, None)
            db.connections.close_all()  # this thread's own connection

    with _refreshing_lock:
        if key in _refreshing:
            return None
        thread = _refreshing[key] = threading.Thread(target=refresh, name="dashboard-refresh", daemon=True)
    thread.start()
    return thread


# Sections EDM apps add to the dashboard (hub.stats: campaign figures), registered from their
# admin modules: (template, figures(request) -> dict or None for "not for this user"). The
# dashboard imports none of them.
SECTIONS: list[tuple[str, Callable[[HttpRequest], dict | None]]] = []


def register_section(template: str, figures: Callable[[HttpRequest], dict | None]) -> None:
    if (template, figures) not in SECTIONS:
        SECTIONS.append((template, figures))


def dashboard_callback(request: HttpRequest, context: dict) -> dict:
    """settings.UNFOLD["DASHBOARD_CALLBACK"]: the figures, for those who may see send logs."""
    if request.user.has_perm("hub.view_sendlog"):
        context["hub"] = dashboard_data(cached=True)
    context["hub_sections"] = [{"template": t, "data": d} for t, figures in SECTIONS
                               if (d := figures(request)) is not None]
    return context
