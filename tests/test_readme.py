"""The README's send API section tells an integrator every limit the API enforces and what
`code` a refusal carries: each HUB_MAX_* setting that the send path reads (found in its
source, so a new limit cannot be added there without documenting it) and the one `code` that
is not -1."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

README = Path(settings.BASE_DIR) / "README.md"


def send_api_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The send API")
    return text[start : text.index("\n## ", start + 1)]


def test_every_size_limit_is_documented():
    section = send_api_section()
    base = Path(settings.BASE_DIR)
    source = "".join((base / f).read_text(encoding="utf-8") for f in ("hub/sending.py", "api/views.py"))
    limits = sorted(set(re.findall(r"settings\.(HUB_MAX_\w+)", source)))
    assert "HUB_MAX_BODY_BYTES" in limits and "HUB_MAX_REQUEST_BYTES" in limits
    assert [name for name in limits if f"`{name}`" not in section] == []
    # The body limit sits in the table, on the fields it applies to.
    table_rows = [line for line in section.splitlines() if line.startswith(("| `message`", "| `text`"))]
    assert len(table_rows) == 2 and all("`HUB_MAX_BODY_BYTES`" in row for row in table_rows)


def test_refusal_codes_are_documented():
    section = send_api_section()
    assert re.search(r'unknown or missing `action` answers `\{"code": 403', section)
    assert "The `code` of a refusal is `-1`" in section
    # Said once, and true: the API's own refusal answers (api/tests/test_refusals.py checks them).
    from api.views import refusal_response
    from hub.sending import Refusal

    assert refusal_response(Refusal("unknown_action")).data["code"] == 403
    assert refusal_response(Refusal("too_large")).data["code"] == -1
