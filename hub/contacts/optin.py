"""Double opt-in: the confirmation mail goes out through the hub itself (hub.sending.accept,
as any app's message would: outbox, queue, retries, logs), sent by one of the list's
account's apps."""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from hub.models import Account, App
from hub.sending import Refusal, SendRequest, accept, primary_sender

from .errors import ContactError
from .links import absolute, confirm_url
from .models import Contact, MailList


def sending_app(account: Account) -> App:
    """The app that sends the account's confirmation mails: its first enabled app with a
    usable SMTP server. ContactError when there is none, or no public URL for the link."""
    if not settings.HUB_PUBLIC_URL:
        raise ContactError("no_public_url", "double opt-in needs HUB_PUBLIC_URL (the host of the confirmation link)")
    for app in App.objects.filter(account=account, enabled=True).order_by("id"):
        try:
            primary_sender(app)
        except Refusal:
            continue
        return app
    raise ContactError("no_app", "this account has no enabled app with an SMTP server to send the confirmation mail; "
                                 "add one, or turn double opt-in off for the list")


def send_confirmation(app: App, mail_list: MailList, contact: Contact) -> str:
    """Queue the confirmation mail; "" when accepted, else the refusal's reason (the contact
    stays unconfirmed and may subscribe again)."""
    context = {"mail_list": mail_list, "contact": contact, "link": absolute(confirm_url(contact))}
    subject = _("Please confirm your subscription to %(list)s") % {"list": mail_list.name}
    try:
        accept(app, SendRequest(to=contact.email, to_name=contact.fullname, subject=subject,
                                message=render_to_string("contacts/confirm_mail.html", context),
                                text=render_to_string("contacts/confirm_mail.txt", context)))
    except Refusal as exc:
        return str(exc)
    return ""
