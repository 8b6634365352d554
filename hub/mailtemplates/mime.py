"""The MIME message of a rendered template: text and HTML alternatives in the template's
transfer encoding (base64 or quoted-printable), its attachments, the headers. The check
measures this message's real size; the campaign dispatcher will send it.

Built by the core's hub.delivery.message.rendered_message, the same function that builds a
campaign row's message at delivery, so what the check measures is what goes out."""

from __future__ import annotations

from email.utils import formatdate, make_msgid

from django.conf import settings

from hub.delivery.message import SMTP_POLICY, rendered_message

from .models import Template
from .personalize import Rendered


def build_message(template: Template, rendered: Rendered, *, sender: str, from_name: str, to: str,
                  to_name: str = "", headers: dict[str, str] | None = None,
                  attachments: list | None = None) -> bytes:
    """The whole message as bytes with CRLF line ends. `attachments` (TemplateAttachment
    rows) default to the template's own, read once here; `headers` are extra headers
    (List-Unsubscribe, ...) whose values the caller made safe."""
    files = list(template.attachments.all()) if attachments is None else attachments
    msg = rendered_message(subject=rendered.subject, html=rendered.html, text=rendered.text,
                           encoding=template.encoding, sender=sender, from_name=from_name, to=to, to_name=to_name,
                           headers=headers, attachments=[(f.filename, f.content_type, bytes(f.content)) for f in files])
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=settings.HUB_DOMAIN)
    return msg.as_bytes(policy=SMTP_POLICY)
