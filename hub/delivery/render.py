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
_renderer: Renderer | None = None


def register(renderer: Renderer) -> None:
    """Called once by the campaigns app's AppConfig.ready(); a second call replaces the first
    (the test runner's reloads)."""
    global _renderer
    _renderer = renderer


def render(row) -> Parts:
    if _renderer is None:
        raise NotRenderable("no campaign renderer is registered (is hub.campaigns installed?)")
    return _renderer(row)
