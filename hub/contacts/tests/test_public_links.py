"""The signed public unsubscribe page: forged or altered tokens are 404, GET only asks,
POST unsubscribes, RFC 8058 one-click POST unsubscribes without a page; both languages."""

from __future__ import annotations

import pytest
from django.core import signing

from hub.contacts import links, services
from hub.contacts.models import Contact


@pytest.fixture
def contact(account, mail_list) -> Contact:
    return services.add_contact(account, mail_list.pk, "reader@x.com", fullname="Reader")


def state(contact: Contact) -> tuple[bool, bool]:
    contact.refresh_from_db()
    return contact.subscribed, contact.unsubscribed_at is not None


def test_url_is_signed_and_carries_no_plain_id(contact, settings):
    path = services.unsubscribe_url(contact)
    assert path.startswith("/unsubscribe/") and f"/{contact.pk}/" not in path
    token = path.split("/")[2]
    assert links.contact_for_token(token, links.UNSUBSCRIBE_SALT) == contact
    assert links.contact_for_token(token, links.CONFIRM_SALT) is None  # purpose-bound
    settings.HUB_PUBLIC_URL = "https://mail.example.com/"
    headers = links.list_unsubscribe_headers(contact)
    assert headers == {"List-Unsubscribe": f"<https://mail.example.com{path}>",
                       "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def test_get_asks_and_does_not_unsubscribe(client, contact):
    r = client.get(services.unsubscribe_url(contact), HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 200
    page = r.content.decode()
    assert "reader@x.com" in page and 'method="post"' in page and "Unsubscribe" in page
    assert r["Cache-Control"] == "no-store" and r["Referrer-Policy"] == "no-referrer"
    assert state(contact) == (True, False)


def test_page_in_chinese_by_default_and_english_on_request(client, contact):
    url = services.unsubscribe_url(contact)
    assert "退订" in client.get(url).content.decode()
    assert "Stop sending mail to" in client.get(url + "?lang=en").content.decode()


def test_post_unsubscribes(client, contact):
    url = services.unsubscribe_url(contact)
    r = client.post(url, {"confirm": "1"}, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 200 and "You are unsubscribed" in r.content.decode()
    assert state(contact) == (False, True)
    again = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "already unsubscribed" in again


def test_rfc8058_one_click_post(client, contact):
    r = client.post(services.unsubscribe_url(contact), "List-Unsubscribe=One-Click",
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")
    assert state(contact) == (False, True)


def tampered(token: str) -> list[str]:
    payload, rest = token.split(":", 1)
    other_payload = signing.b64_encode(b"999999").decode()
    return ["", "x", token[:-1] + ("A" if token[-1] != "A" else "B"), f"{other_payload}:{rest}",
            signing.dumps(999999, salt="wrong-salt"), signing.dumps(1, salt=links.UNSUBSCRIBE_SALT, key="not-ours"),
            payload]


def test_forged_or_altered_tokens_are_404_and_change_nothing(client, contact):
    token = services.unsubscribe_url(contact).split("/")[2]
    for bad in tampered(token):
        if not bad:
            continue
        assert client.get(f"/unsubscribe/{bad}/").status_code == 404, bad
        assert client.post(f"/unsubscribe/{bad}/", "List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded").status_code == 404
    assert state(contact) == (True, False)


def test_deleted_contact_is_404(client, account, contact):
    url = services.unsubscribe_url(contact)
    services.delete_contact(account, contact.pk)
    assert client.get(url).status_code == 404


def test_other_methods_refused(client, contact):
    assert client.put(services.unsubscribe_url(contact)).status_code == 405
    assert state(contact) == (True, False)
