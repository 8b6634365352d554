"""The signed "view in browser" page: renders the template for the link's contact,
sandboxed; forged, altered or foreign links are 404."""

from __future__ import annotations

from django.core import signing

from hub.contacts import services as contacts
from hub.mailtemplates import services
from hub.mailtemplates.links import WEBVIEW_SALT, links_for, webview_url
from hub.models import Account

from .conftest import GOOD_HTML


def test_webview_renders_for_the_contact(client, account, template, settings):
    settings.HUB_PUBLIC_URL = "https://mail.example.com"
    ml = contacts.create_list(account, "l", "")
    contact = contacts.add_contact(account, ml.pk, "a@example.com", fullname="<i>李</i>")
    links = links_for(template, contact)
    assert links["webview_url"].startswith("https://mail.example.com/view/")
    r = client.get(webview_url(template.pk, contact.pk))
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    assert "sandbox" in r["Content-Security-Policy"] and "script-src" not in r["Content-Security-Policy"]
    page = r.content.decode()
    assert "你好 &lt;i&gt;李&lt;/i&gt;" in page and links["unsubscribe_url"] in page


def test_bad_links_are_not_found(client, account, other, template):
    ml = contacts.create_list(account, "l", "")
    contact = contacts.add_contact(account, ml.pk, "a@example.com")
    good = webview_url(template.pk, contact.pk)
    assert client.get(good[:-3] + "xx/").status_code == 404
    assert client.get("/view/" + signing.dumps([template.pk, contact.pk], salt="other") + "/").status_code == 404
    assert client.get("/view/" + signing.dumps("x", salt=WEBVIEW_SALT) + "/").status_code == 404
    assert client.post(good).status_code == 405
    # A template of another account, even with a valid signature, is not shown for this contact.
    foreign = services.create_template(other, name="f", subjects="s", html=GOOD_HTML)
    assert client.get(webview_url(foreign.pk, contact.pk)).status_code == 404
    # A manager's shared template is shown to its sub-account's contacts.
    manager = Account.objects.create(name="m", is_manager=True)
    account.parent = manager
    account.save()
    shared = services.create_template(manager, name="s", subjects="s", html=GOOD_HTML, shared=True)
    assert client.get(webview_url(shared.pk, contact.pk)).status_code == 200
    services.delete_template(account, template.pk)
    assert client.get(good).status_code == 404
