"""Signed public links for contacts: unsubscribe (one per contact, no expiry: it sits in
mails people read years later) and double opt-in confirmation (expires after
HUB_CONFIRM_MAX_AGE_SECONDS). The token is django.core.signing over the contact id with a
purpose-specific salt: HMAC-SHA256 with SECRET_KEY, checked in constant time, so ids in a
link can be neither guessed nor altered. Pages: api/public (views), outside the core."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

from .models import Contact

UNSUBSCRIBE_SALT = "hub.contacts.unsubscribe"
CONFIRM_SALT = "hub.contacts.confirm"
# RFC 8058: a mail client that sees this header may unsubscribe with one POST (no page).
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


def make_token(contact: Contact, salt: str) -> str:
    return signing.dumps(contact.pk, salt=salt)


def contact_for_token(token: str, salt: str, max_age: int | None = None) -> Contact | None:
    """The contact a token names, or None: forged, altered, expired, or the contact is gone."""
    if not token or len(token) > 200:
        return None
    try:
        pk = signing.loads(token, salt=salt, max_age=max_age)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(pk, int) or isinstance(pk, bool):
        return None
    return Contact.objects.filter(pk=pk).select_related("mail_list").first()


def absolute(path: str) -> str:
    """A path made absolute with HUB_PUBLIC_URL (e.g. https://mail.example.com); unchanged
    when the setting is empty."""
    base = settings.HUB_PUBLIC_URL.rstrip("/")
    return f"{base}{path}" if base else path


def unsubscribe_url(contact: Contact) -> str:
    """The path of the contact's signed unsubscribe page (absolute(...) for mails)."""
    return reverse("public-unsubscribe", kwargs={"token": make_token(contact, UNSUBSCRIBE_SALT)})


def confirm_url(contact: Contact) -> str:
    return reverse("public-confirm", kwargs={"token": make_token(contact, CONFIRM_SALT)})


def list_unsubscribe_headers(contact: Contact) -> dict[str, str]:
    """Headers for a campaign mail to this contact (RFC 2369 + RFC 8058 one-click)."""
    return {"List-Unsubscribe": f"<{absolute(unsubscribe_url(contact))}>", "List-Unsubscribe-Post": ONE_CLICK_BODY}
