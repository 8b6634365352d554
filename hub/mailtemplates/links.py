"""The signed "view in browser" link of a template for one contact. Same approach as
hub.contacts.links: django.core.signing (HMAC-SHA256 with SECRET_KEY, checked in constant
time) over (template id, contact id) with a purpose-specific salt; no expiry (it sits in
mails read years later). The page is api/public's `webview`."""

from __future__ import annotations

from django.core import signing
from django.urls import reverse

from hub.contacts import links as contact_links
from hub.contacts.models import Contact

from .models import Template
from .services import usable_filter

WEBVIEW_SALT = "hub.mailtemplates.webview"


def webview_token(template_id: int, contact_id: int) -> str:
    return signing.dumps([template_id, contact_id], salt=WEBVIEW_SALT, compress=True)


def webview_url(template_id: int, contact_id: int) -> str:
    return reverse("public-webview", kwargs={"token": webview_token(template_id, contact_id)})


def for_token(token: str) -> tuple[Template, Contact] | None:
    """(template, contact) a token names, or None: forged, altered, or either is gone, or
    the contact's account may no longer use the template."""
    if not token or len(token) > 200:
        return None
    try:
        ids = signing.loads(token, salt=WEBVIEW_SALT)
    except signing.BadSignature:
        return None
    if not (isinstance(ids, list) and len(ids) == 2 and all(type(i) is int for i in ids)):
        return None
    contact = Contact.objects.filter(pk=ids[1]).select_related("account").first()
    if contact is None:
        return None
    template = Template.objects.filter(usable_filter(contact.account), pk=ids[0]).first()
    return (template, contact) if template is not None else None


def links_for(template: Template, contact: Contact) -> dict[str, str]:
    """The absolute links a mail of `template` to `contact` carries (HUB_PUBLIC_URL)."""
    return {"unsubscribe_url": contact_links.absolute(contact_links.unsubscribe_url(contact)),
            "webview_url": contact_links.absolute(webview_url(template.pk, contact.pk))}
