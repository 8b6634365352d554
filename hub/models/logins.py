"""Failed logins counted per client IP and per AppID in fixed windows, shared by every web
and smtpd process through the database (hub.access.login)."""

from __future__ import annotations

from django.db import models


class LoginFailureCounter(models.Model):
    """Failed logins of one key (an IP or IPv6 /64, or an AppID) in one window."""

    class Scope(models.TextChoices):
        IP = "ip", "IP"
        APP = "app", "AppID"

    scope = models.CharField(max_length=3, choices=Scope.choices)
    key = models.CharField(max_length=64)
    window_start = models.DateTimeField(db_index=True)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key", "window_start"], name="uniq_login_failure_window")]
