"""The hub's own settings (a singleton) and the IP-network helpers they validate with."""

from __future__ import annotations

import ipaddress
import time

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


def parse_networks(text: str) -> list[ipaddress._BaseNetwork]:
    """One IP or CIDR per line (commas and spaces also separate); raises ValueError."""
    items = text.replace(",", " ").split()
    return [ipaddress.ip_network(item, strict=False) for item in items]


def validate_networks(text: str) -> None:
    try:
        parse_networks(text)
    except ValueError as exc:
        raise ValidationError(_("Not a list of IP addresses or CIDR ranges: %(err)s"), params={"err": exc})


class Site(models.Model):
    """The hub's own settings; a singleton (always pk=1)."""

    class ClientIpMode(models.TextChoices):
        REMOTE_ADDR = "remote_addr", _("REMOTE_ADDR only (no proxy)")
        X_FORWARDED_FOR = "x_forwarded_for", _("X-Forwarded-For from trusted proxies")
        X_REAL_IP = "x_real_ip", _("X-Real-IP from trusted proxies")

    title = models.CharField(_("title"), max_length=200, default="SMTP Hub")
    keywords = models.CharField(_("keywords"), max_length=500, blank=True)
    description = models.TextField(_("description"), blank=True)
    ip_blocklist = models.TextField(
        _("IP blocklist"), blank=True, validators=[validate_networks],
        help_text=_("One IP address or CIDR range per line; these clients may not use the API."),
    )
    client_ip_mode = models.CharField(
        _("client IP source"), max_length=20, choices=ClientIpMode.choices, default=ClientIpMode.REMOTE_ADDR
    )
    trusted_proxies = models.TextField(
        _("trusted proxies"), blank=True, default="127.0.0.1\n::1", validators=[validate_networks],
        help_text=_("Proxy addresses whose forwarding headers are believed; one IP or CIDR per line."),
    )
    default_from_name = models.CharField(_("default sender name"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("site settings")
        verbose_name_plural = _("site settings")

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)
        Site._cached = None  # this process sees its own edit at once

    @classmethod
    def load(cls) -> Site:
        site, _created = cls.objects.get_or_create(pk=1)
        return site

    # The API reads the settings on every request; they change rarely. Each process keeps
    # them this long, so an edit (e.g. to the IP blocklist) applies within seconds.
    CACHE_SECONDS = 5.0
    _cached: tuple[float, Site] | None = None

    @classmethod
    def cached(cls) -> Site:
        now = time.monotonic()
        if cls._cached is None or now - cls._cached[0] > cls.CACHE_SECONDS:
            cls._cached = (now, cls.load())
        return cls._cached[1]
