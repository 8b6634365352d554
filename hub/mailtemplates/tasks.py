"""django-q2 entry points of the templates app (the names the queue stores)."""

from __future__ import annotations


def check_template(template_id: int, revision: int) -> str:
    """The check of one template revision (hub.mailtemplates.check.run_check)."""
    from .check import run_check

    return run_check(template_id, revision)
