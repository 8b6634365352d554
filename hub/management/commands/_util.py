"""Shared bits of the provisioning commands: JSON output and clean, non-zero failures."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError


def dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def full_clean_or_fail(instance) -> None:
    try:
        instance.full_clean()
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        raise CommandError(problems) from exc


def parse_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise CommandError(f"not a list of ids: {text!r}") from exc
    if not ids:
        raise CommandError("at least one id is required")
    return ids
