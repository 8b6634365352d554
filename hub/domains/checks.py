"""System checks of the domains settings (registered when the app is ready)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

from .dns import parse_resolver


@register()
def check_domain_settings(app_configs, **kwargs):
    try:
        parse_resolver(settings.HUB_DNS_RESOLVER)
    except ValueError as exc:
        return [Error(f"HUB_DNS_RESOLVER: {exc}", hint="host:port, [v6]:port, host, or empty", id="domains.E001")]
    return []


# Only with `check --deploy`: the placeholders are right for a first run on a laptop, and a
# warning on every manage.py command taught people to ignore the checks.
@register(deploy=True)
def check_domain_hosts(app_configs, **kwargs):
    problems = []
    placeholders = [name for name in ("HUB_SPF_INCLUDE", "HUB_MX_HOST")
                    if getattr(settings, name).endswith(".invalid") or not getattr(settings, name).strip()]
    if placeholders and not settings.DEBUG:
        problems.append(Warning(
            f"{', '.join(placeholders)} still the placeholder: no customer domain can be verified.",
            hint="Set them to the hub's SPF include host and MX host.", id="domains.W001"))
    return problems
