"""Delivery policy: which of an app's servers to try and in what order (priority, failing
servers last), their health, and when a failed message is tried again (the retry schedule).
Bounce classification (bounces.py) and per-server send limits (throttle.py) sit beside it."""

from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from ..models import AppServer, SendLog, SmtpServer


def servers_in_order(app_id: int) -> list[SmtpServer]:
    """The app's enabled servers by priority, with recently failing ones moved to the end:
    while the primary is down each message should not first wait for it to time out."""
    links = AppServer.objects.filter(app_id=app_id, server__enabled=True).select_related("server")
    return by_health([link.server for link in links.order_by("priority", "id")])

def by_health(servers: list[SmtpServer]) -> list[SmtpServer]:
    """Priority order, with servers that failed within the cooldown moved to the end."""
    cutoff = timezone.now() - timedelta(seconds=settings.HUB_SERVER_COOLDOWN_SECONDS)
    return sorted(servers, key=lambda s: bool(s.failing_since and s.last_error_at and s.last_error_at > cutoff))

def mark_server(server: SmtpServer, error: str = "") -> None:
    """Keep the server's health current, writing only when it changes (or once a minute)."""
    now = timezone.now()
    if error:
        server.failing_since = server.failing_since or now
        server.last_error, server.last_error_at = error[:2000], now
        SmtpServer.objects.filter(pk=server.pk).update(
            failing_since=server.failing_since, last_error=server.last_error, last_error_at=now)
    elif server.failing_since or not server.last_success_at or now - server.last_success_at > timedelta(minutes=1):
        server.failing_since, server.last_success_at = None, now
        SmtpServer.objects.filter(pk=server.pk).update(failing_since=None, last_success_at=now)

def too_old(row: SendLog, now) -> bool:
    return (now - row.created_at).total_seconds() > settings.HUB_RETRY_MAX_AGE

def retry_delay(row: SendLog, attempts: int, now) -> float | None:
    """Seconds until the next try after `attempts` tries, or None when the message is out
    of tries or older than HUB_RETRY_MAX_AGE."""
    schedule = settings.HUB_RETRY_SCHEDULE
    if attempts > len(schedule) or too_old(row, now):
        return None
    return schedule[attempts - 1] * random.uniform(0.8, 1.2)
