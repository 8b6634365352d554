"""django-q2 entry points of the domains app (the names the queue stores)."""

from __future__ import annotations


def recheck_domains() -> dict[str, int]:
    """Scheduled (migration 0001): re-check the DNS of domains due (services.recheck_due)."""
    from .services import recheck_due

    return recheck_due()
