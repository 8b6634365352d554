"""Double opt-in: subscribe() adds the address unconfirmed and the hub itself sends the
confirmation (hub.sending.accept -> queue -> delivery to an in-process SMTP sink); the
signed link confirms on POST only."""

from __future__ import annotations

import re

import pytest

from hub.contacts import services
from hub.contacts.models import Contact
from hub.contacts.services import ContactError
from hub.models import SendLog


@pytest.fixture
def opt_in_list(account, settings):
    settings.HUB_PUBLIC_URL = "https://mail.example.com"
    return services.create_list(account, "Newsletter", double_opt_in=True)


def test_confirmation_mail_through_the_hub_and_confirm_page(client, account, opt_in_list, smtp_sink, make_server,
                                                             make_app, run_queue):
    make_app(make_server(smtp_sink), account=account)
    result = services.subscribe(account, opt_in_list.pk, [("Reader@X.com", "读者")])
    assert (result.added, result.errors) == (1, [])
    contact = Contact.objects.get(email="reader@x.com")
    assert (contact.subscribed, contact.pending, contact.fullname) == (False, True, "读者")
    assert SendLog.objects.filter(to__contains="reader@x.com").count() == 1

    run_queue()  # the drain delivers to the sink
    assert len(smtp_sink.messages) == 1
    message = smtp_sink.messages[0]
    assert message.rcpt_tos == ["reader@x.com"]
    text = message.message.get_body(("plain",)).get_content()
    link = re.search(r"https://mail\.example\.com(/subscribe/confirm/[^/\s]+/)", text)
    assert link, text
    path = link.group(1)

    page = client.get(path, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and 'method="post"' in page.content.decode()
    contact.refresh_from_db()
    assert contact.pending and not contact.subscribed  # GET confirms nothing
    done = client.post(path, HTTP_ACCEPT_LANGUAGE="en")
    assert "Subscription confirmed" in done.content.decode()
    contact.refresh_from_db()
    assert (contact.subscribed, contact.pending) == (True, False)

    # Subscribing again: already subscribed, no second mail.
    assert services.subscribe(account, opt_in_list.pk, [("reader@x.com", "")]).duplicate == 1
    assert SendLog.objects.count() == 1


def test_confirm_link_is_signed(client, account, opt_in_list):
    contact = services.add_contact(account, opt_in_list.pk, "a@x.com")
    Contact.objects.filter(pk=contact.pk).update(pending=True, subscribed=False)
    assert client.post("/subscribe/confirm/forged:token/").status_code == 404
    unsubscribe_token = services.unsubscribe_url(contact).split("/")[2]
    assert client.post(f"/subscribe/confirm/{unsubscribe_token}/").status_code == 404  # other purpose
    contact.refresh_from_db()
    assert contact.pending


def test_expired_confirm_link(client, account, opt_in_list, settings):
    from hub.contacts.links import confirm_url

    contact = services.add_contact(account, opt_in_list.pk, "a@x.com")
    settings.HUB_CONFIRM_MAX_AGE_SECONDS = -1
    assert client.get(confirm_url(contact)).status_code == 404


def test_no_app_refuses_before_writing(account, opt_in_list):
    with pytest.raises(ContactError) as info:
        services.subscribe(account, opt_in_list.pk, [("a@x.com", "")])
    assert info.value.code == "no_app" and "app" in info.value.message
    assert not Contact.objects.exists()


def test_no_public_url_refuses_before_writing(account, opt_in_list, settings, make_server, make_app, smtp_sink):
    make_app(make_server(smtp_sink), account=account)
    settings.HUB_PUBLIC_URL = ""
    with pytest.raises(ContactError) as info:
        services.subscribe(account, opt_in_list.pk, [("a@x.com", "")])
    assert info.value.code == "no_public_url"
    assert not Contact.objects.exists() and not SendLog.objects.exists()
