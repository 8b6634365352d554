"""The MIME message of a rendered template: text and HTML alternatives in the template's
transfer encoding (base64 or quoted-printable), its attachments, the headers. The check
measures this message's real size; the campaign dispatcher will send it.

Built with the core's pieces (hub.delivery.message: header folding and encoding, the
attachment part with RFC 2231/2047 names, the boundary, CRLF policy) so a template mail
looks like every other mail of the hub; they are used, not changed."""

from __future__ import annotations

from email.charset import BASE64, QP, Charset
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid

from django.conf import settings

from hub.delivery.message import SMTP_POLICY, _attachment_part, _boundary, address_header, header_text

from .models import Template
from .personalize import Rendered


def _charset(encoding: str) -> Charset:
    charset = Charset("utf-8")
    charset.body_encoding = QP if encoding == Template.Encoding.QP else BASE64
    return charset


def build_message(template: Template, rendered: Rendered, *, sender: str, from_name: str, to: str,
                  to_name: str = "", headers: dict[str, str] | None = None,
                  attachments: list | None = None) -> bytes:
    """The whole message as bytes with CRLF line ends. `attachments` (TemplateAttachment
    rows) default to the template's own, read once here; `headers` are extra headers
    (List-Unsubscribe, ...) whose values the caller made safe."""
    charset = _charset(template.encoding)
    body = MIMEMultipart("alternative", boundary=_boundary())
    body.attach(MIMEText(rendered.text, "plain", charset))
    body.attach(MIMEText(rendered.html, "html", charset))
    files = list(template.attachments.all()) if attachments is None else attachments
    if files:
        msg = MIMEMultipart("mixed", boundary=_boundary())
        msg.attach(body)
        for f in files:
            msg.attach(_attachment_part(f.filename, f.content_type, bytes(f.content)))
    else:
        msg = body
    msg["Subject"] = header_text(rendered.subject)
    msg["From"] = address_header([(from_name, sender)], "From")
    msg["To"] = address_header([(to_name, to)], "To")
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=settings.HUB_DOMAIN)
    for name, value in (headers or {}).items():
        msg[name] = value
    return msg.as_bytes(policy=SMTP_POLICY)
