"""`unsubscribed` is emitted wherever a contact leaves a list (signed link, RFC 8058
one-click, the APIs' ml-unsub, the admin), in the transaction of the change, so a
subscribed webhook gets an outbox row for each, with `how`."""

from __future__ import annotations

import base64

import pytest

from hub.contacts import services
from hub.contacts.models import Contact
from hub.models import App
from hub.webhooks.models import Event


@pytest.fixture
def setup(account, make_endpoint):
    endpoint = make_endpoint(account, "https://hooks.example.com/", kinds="unsubscribed")
    mail_list = services.create_list(account, "读者", "")
    contacts = [services.add_contact(account, mail_list.pk, f"r{i}@example.com") for i in range(3)]
    return endpoint, mail_list, contacts


def told() -> list[tuple[str, int | None, str, dict]]:
    return list(Event.objects.order_by("id").values_list("kind", "contact_id", "email", "data"))


def basic(account) -> dict:
    app = App(name="unsub", account=account)
    secret = app.rotate_secret()
    app.save()
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{app.pk}:{secret}".encode()).decode()}


def test_signed_link_and_one_click(client, setup, account):
    _endpoint, mail_list, (a, b, _c) = setup
    assert client.post(services.unsubscribe_url(a), {"confirm": "1"}).status_code == 200
    assert client.post(services.unsubscribe_url(b), "List-Unsubscribe=One-Click",
                       content_type="application/x-www-form-urlencoded").status_code == 200
    client.post(services.unsubscribe_url(a), {"confirm": "1"})  # again: no change, nothing told
    assert told() == [("unsubscribed", a.pk, a.email, {"list_id": mail_list.pk, "how": "link"}),
                      ("unsubscribed", b.pk, b.email, {"list_id": mail_list.pk, "how": "one-click"})]
    assert set(Event.objects.values_list("account_id", flat=True)) == {account.pk}


def test_native_api_and_v28_ml_unsub(client, setup, account):
    _endpoint, mail_list, (a, b, c) = setup
    h = basic(account)
    r = client.post(f"/api/v1/lists/{mail_list.pk}/unsubscribe", {"emails": [a.email, "new@example.com"]},
                    content_type="application/json", **h)
    assert r.status_code == 200, r.content
    r = client.get(f"/apinew/mloperate.php?do=ml-unsub&list_id={mail_list.pk}&address={b.email},{a.email}", **h)
    assert r.status_code == 200, r.content
    # The address added as unsubscribed was never on the list: not told; a is told once.
    assert told() == [("unsubscribed", a.pk, a.email, {"list_id": mail_list.pk, "how": "api"}),
                      ("unsubscribed", b.pk, b.email, {"list_id": mail_list.pk, "how": "api"})]
    assert Contact.objects.get(pk=c.pk).subscribed


def test_admin_unsubscribes(su, setup):
    _endpoint, mail_list, (a, _b, _c) = setup
    url = f"/admin/contacts/contact/{a.pk}/change/"
    form = {"fullname": "", "sex": "", "phone": "", "area": "", **{f"var{i}": "" for i in range(1, 11)}}
    r = su.post(url, {**form, "subscribed": ""})
    assert r.status_code == 302, r.content.decode()[:2000]
    assert told() == [("unsubscribed", a.pk, a.email, {"list_id": mail_list.pk, "how": "admin"})]
    su.post(url, {**form, "subscribed": "on"})  # subscribed again: not an unsubscribe
    assert len(told()) == 1


def test_rolled_back_unsubscribe_tells_nothing(setup, monkeypatch):
    """The outbox row is written, then the change fails after it: both are rolled back."""
    _endpoint, mail_list, (a, _b, _c) = setup
    original = services.tell_unsubscribed
    written = []

    def tell_then_fail(*args, **kwargs):
        original(*args, **kwargs)
        written.append(Event.objects.count())
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "tell_unsubscribed", tell_then_fail)
    with pytest.raises(RuntimeError):
        services.unsubscribe(mail_list.account, mail_list.pk, [a.email, "new@example.com"])
    assert written == [1]
    assert told() == [] and Contact.objects.get(pk=a.pk).subscribed
