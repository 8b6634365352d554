"""django-q2 entry points of the contacts app (the names the queue stores)."""

from __future__ import annotations


def run_import(job_id: int, token: str) -> str:
    """One run of an import job (hub.contacts.imports.run)."""
    from .imports import run

    return run(job_id, token)


def sweep_imports() -> dict[str, int]:
    """Every minute: resume or fail imports whose worker was lost (imports.sweep)."""
    from .imports import sweep

    return sweep()
