"""A test mail of a template, sent through the hub itself: rendered for a contact (or the
sample contact), accepted by hub.sending.accept as one of the template's account's apps
(validation, suppression, quota, the send log), then delivered at once in this request as
the apps page's test email is. The core builds that message (base64 bodies); the
template's own transfer encoding applies to campaign mail (mime.build_message)."""

from __future__ import annotations

from django.db import transaction

from hub.contacts.models import Contact
from hub.delivery.outbox import deliver_batch
from hub.models import App, SendLog
from hub.sending import FileIn, SendRequest, accept

from .links import links_for
from .models import Template
from .personalize import SAMPLE_CONTACT, contact_values, render

# Links of a test mail without a contact: nothing to unsubscribe, no page to show.
TEST_LINKS = {"unsubscribe_url": "#unsubscribe", "webview_url": "#webview"}


def send_test(template: Template, app: App, to: str, contact: Contact | None = None, subject_index: int = 0) -> SendLog:
    """Queue and deliver one test mail; raises hub.sending.Refusal when refused. The app must
    belong to the template's account (the caller checks; asserted here)."""
    if app.account_id != template.account_id:
        raise ValueError("the app is not of the template's account")
    if contact is not None:
        values, links = contact_values(contact), links_for(template, contact)
    else:
        values, links = {**SAMPLE_CONTACT, "email": to}, TEST_LINKS
    rendered = render(template, values, links, subject_index)
    files = [FileIn(a.filename, a.content_type, bytes(a.content)) for a in template.attachments.all()]
    req = SendRequest(to=to, subject=rendered.subject, message=rendered.html, text=rendered.text, attachments=files)
    with transaction.atomic():
        row = accept(app, req, client_ip=None)
        SendLog.objects.filter(pk=row.pk).update(source=SendLog.Source.ADMIN)
    deliver_batch([row.id])
    row.refresh_from_db()
    return row
