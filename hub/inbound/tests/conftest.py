"""Fixtures of the bounce tests: the samples (tests/samples, filled in for a message), a sent
message of the `account` fixture, and a recorder of hub.events."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.delivery import verp
from hub.models import SendLog

SAMPLES = Path(__file__).parent / "samples"
BOUNCE_DOMAIN = "bounce.example"


def sample(name: str, row: SendLog | None = None, rcpt: str = "", crlf: bool = False, **extra: str) -> bytes:
    """A sample with its placeholders filled for `row` (its recipient, ids, VERP address)."""
    text = (SAMPLES / name).read_text("utf-8")
    values = {"RCPT": rcpt or (row.to if row else "someone@example.com"),
              "MESSAGE_ID": row.message_id if row else "<none@example.org>",
              "LOG_ID": str(row.id) if row else "0", "APP_ID": str(row.app_id) if row else "0",
              "RETURN_PATH": verp.address(row.id) if row else "noreply@example.org"}
    values.update(extra)
    for key, value in values.items():
        text = text.replace(f"%{key}%", value)
    data = text.encode("utf-8")
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") if crlf else data


@pytest.fixture(autouse=True)
def _bounce_domain(settings):
    settings.HUB_BOUNCE_DOMAIN = BOUNCE_DOMAIN


@dataclass
class Sent:
    app: object
    server: object

    def row(self, to: str = "ghost@example.com", **fields) -> SendLog:
        """A message the server accepted (as delivery records it)."""
        values = {"app": self.app, "to": to, "subject": "Hello", "html_body": "<p>x</p>",
                  "status": SendLog.Status.SENT, "smtp_server": self.server, "smtp_code": 250}
        values.update(fields)
        row = SendLog.objects.create(**values)
        row.message_id = f"<{row.id}.test@example.org>"
        row.save(update_fields=["message_id"])
        return row


@pytest.fixture
def sent(account, make_server, make_app) -> Sent:
    server = make_server()
    return Sent(make_app(server, account=account).app, server)


