"""The seam through which an EDM app supplies the content of its outbox rows at delivery.

A campaign row (SendLog.campaign_id set) stores no body: one row per recipient stays small,
and the body is rendered from template and contact when the row is delivered. The core may
not import the campaigns app (import-linter), so that app registers its renderer here in its
AppConfig.ready(); hub.delivery.message.build_message calls `render(row)` for such rows and
builds the MIME itself (From = Parts.from_email or the delivering server's sender, Message-ID, the hub's own
headers), exactly as for every other message.

A renderer that cannot render a row (its campaign or template is gone) raises
NotRenderable: the attempt fails permanently with that reason instead of sending nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class NotRenderable(Exception):
    """The row's content cannot be built (deleted campaign, template or contact)."""


@dataclass(frozen=True)
class Parts:
    """What a renderer returns for one row. Header values in `headers` must be safe (no line
    breaks); names are the renderer's (List-Unsubscribe, Disposition-Notification-To, ...)."""

    subject: str
    html: str
    text: str
    from_name: str = ""
    # The From address; "" = the delivering server's sender. The envelope sender (bounces,
    # SPF) stays the server's either way; DKIM signers sign by this From's domain.
    from_email: str = ""
    to_name: str = ""
    reply_to: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # "base64" or "quoted-printable" (the template's transfer encoding)
    encoding: str = "base64"
    # (file name, content type, content)
    attachments: tuple[tuple[str, str, bytes], ...] = ()


Renderer = Callable[[object], Parts]
Prefetcher = Callable[[list], None]
_renderer: Renderer | None = None
_prefetcher: Prefetcher | None = None


def register(renderer: Renderer, prefetcher: Prefetcher | None = None) -> None:
    """Called once by the campaigns app's AppConfig.ready(); a second call replaces the first
    (the test runner's reloads). `prefetcher(rows)`, when given, is called with each claimed
    batch's campaign rows, so that what the renderer reads per row (the contact) is read
    once per batch instead."""
    global _renderer, _prefetcher
    _renderer, _prefetcher = renderer, prefetcher


def prefetch(rows: list) -> None:
    """The claimed batch's campaign rows, before any is delivered (hub.delivery.outbox)."""
    campaign_rows = [row for row in rows if row.campaign_id is not None]
    if campaign_rows and _prefetcher is not None:
        _prefetcher(campaign_rows)


def render(row) -> Parts:
    if _renderer is None:
        raise NotRenderable("no campaign renderer is registered (is hub.campaigns installed?)")
    return _renderer(row)
