"""System checks for the webhook settings (a wrong value fails at start, not at the first POST)."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.checks import Error, register


@register()
def webhook_settings(app_configs, **kwargs) -> list[Error]:
    errors = []
    for net in settings.HUB_WEBHOOK_ALLOW_NETWORKS:
        if not net.strip():
            continue
        try:
            ipaddress.ip_network(net.strip(), strict=False)
        except ValueError:
            errors.append(Error(f"HUB_WEBHOOK_ALLOW_NETWORKS: {net!r} is not an IP network (CIDR)",
                                id="webhooks.E001"))
    for name in ("HUB_WEBHOOK_BATCH", "HUB_WEBHOOK_MAX_ATTEMPTS", "HUB_WEBHOOK_THREADS"):
        if getattr(settings, name) < 1:
            errors.append(Error(f"{name} must be at least 1", id="webhooks.E002"))
    if settings.HUB_WEBHOOK_TIMEOUT_SECONDS <= 0:
        errors.append(Error("HUB_WEBHOOK_TIMEOUT_SECONDS must be positive", id="webhooks.E003"))
    return errors
