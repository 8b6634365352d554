"""V28 4.1-4.6: contact lists (mloperate.php maillist-*, unsubscribe-export)."""

from __future__ import annotations

import pytest
import requests

from hub.contacts import services
from hub.contacts.models import Contact, MailList

from .helpers import envelope, fields, parse

URL = "/mm-ms/apinew/mloperate.php?do="
LIST_FIELDS = ["id", "subject", "description", "count", "input_status", "status"]


def test_add_list_and_read_it_over_http(live_server, tenant_a):
    base = f"{live_server.url}/mm-ms/apinew/mloperate.php"
    # PHP: curl with CURLAUTH_BASIC and CURLOPT_POSTFIELDS = http_build_query([...])
    response = requests.post(f"{base}?do=maillist-add", auth=tenant_a.auth, timeout=10,
                             data={"subject": "会员 <VIP> & 朋友", "status": "enabled", "description": "说明"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert b"<data>" in response.content and b"CDATA" not in response.content  # <data>78</data> as the sample
    status, list_id = envelope(response)
    assert status == "success"
    ml = MailList.objects.get(pk=int(list_id))
    assert ml.account == tenant_a.account and ml.name == "会员 <VIP> & 朋友"

    response = requests.get(f"{base}?do=maillist-list", auth=tenant_a.auth, timeout=10)
    root = parse(response.content)
    assert root.tag == "maillist"
    [item] = root.findall("item")
    assert fields(item) == [("id", list_id), ("subject", "会员 <VIP> & 朋友"), ("description", "说明"),
                            ("count", "0"), ("input_status", "0"), ("status", "enabled")]

    response = requests.get(f"{base}?do=maillist-detail&id={list_id}", auth=tenant_a.auth, timeout=10)
    root = parse(response.content)
    assert root.tag == "maillist" and [c.tag for c in root] == LIST_FIELDS
    assert root.findtext("id") == list_id

    response = requests.post(f"{base}?do=maillist-edit&id={list_id}", auth=tenant_a.auth, timeout=10,
                             data={"status": "disabled", "subject": "改名"})
    assert envelope(response)[0] == "success"
    ml.refresh_from_db()
    assert ml.name == "改名" and not ml.enabled and ml.description == "说明"

    response = requests.get(f"{base}?do=maillist-del&id={list_id}", auth=tenant_a.auth, timeout=10)
    assert envelope(response)[0] == "success"
    assert not MailList.objects.filter(pk=ml.pk).exists()


def test_add_disabled_list(client, tenant_a):
    response = client.post(URL + "maillist-add", {"subject": "x", "status": "disabled"}, **tenant_a.headers)
    assert envelope(response)[0] == "success"
    assert MailList.objects.get().enabled is False


@pytest.mark.parametrize("data,ident", [
    ({"status": "enabled"}, "add_maillist_error"),
    ({"subject": "x"}, "add_maillist_error"),
    ({"subject": "x", "status": "on"}, "add_maillist_error"),
    ({"subject": "x" * 201, "status": "enabled"}, "add_maillist_error"),
    ({"subject": "x", "status": "enabled", "description": "d" * 2001}, "add_maillist_error"),
])
def test_add_refusals_write_nothing(client, tenant_a, data, ident):
    response = client.post(URL + "maillist-add", data, **tenant_a.headers)
    assert response.status_code == 400
    status, message = envelope(response)
    assert status == ident and message
    assert MailList.objects.count() == 0


def test_add_is_post_only(client, tenant_a):
    response = client.get(URL + "maillist-add&subject=x&status=enabled", **tenant_a.headers)
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert envelope(response)[0] == "method_not_allowed"
    assert MailList.objects.count() == 0


def test_edit_refusals(client, tenant_a):
    ml = services.create_list(tenant_a.account, "L")
    assert client.get(URL + f"maillist-edit&id={ml.pk}&subject=y", **tenant_a.headers).status_code == 405
    response = client.post(URL + f"maillist-edit&id={ml.pk}", {}, **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == "update_maillist_error"
    response = client.post(URL + f"maillist-edit&id={ml.pk}", {"status": "maybe"}, **tenant_a.headers)
    assert envelope(response)[0] == "update_maillist_error"
    response = client.post(URL + "maillist-edit", {"subject": "y"}, **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == "param_error"
    ml.refresh_from_db()
    assert ml.name == "L" and ml.enabled


@pytest.mark.parametrize("do", ["maillist-detail", "maillist-del", "unsubscribe-export"])
def test_missing_or_bad_id(client, tenant_a, do):
    for suffix in ("", "&id=", "&id=abc", "&id=0"):
        response = client.get(URL + do + suffix, **tenant_a.headers)
        assert response.status_code == 400 and envelope(response)[0] == "param_error", suffix
    response = client.get(URL + do + "&id=999999", **tenant_a.headers)
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"


def test_cross_account(client, tenant_a, tenant_b):
    mine = services.create_list(tenant_a.account, "mine")
    theirs = services.create_list(tenant_b.account, "theirs secret")
    services.add_contact(tenant_b.account, theirs.pk, "b@example.com")
    body = client.get(URL + "maillist-list", **tenant_a.headers).content.decode()
    assert "theirs secret" not in body and f"<id>{mine.pk}</id>" in body
    for method, do, data in [("get", "maillist-detail", None), ("post", "maillist-edit", {"subject": "hacked"}),
                             ("get", "maillist-del", None), ("get", "unsubscribe-export", None)]:
        response = getattr(client, method)(URL + f"{do}&id={theirs.pk}", data or {}, **tenant_a.headers)
        assert response.status_code == 404 and envelope(response)[0] == "not_exist", do
    theirs.refresh_from_db()
    assert theirs.name == "theirs secret" and Contact.objects.filter(mail_list=theirs).count() == 1


def test_unsubscribe_export(client, tenant_a):
    ml = services.create_list(tenant_a.account, "L")
    services.add_contacts(tenant_a.account, ml.pk, [{"email": "a@example.com"}, {"email": "b@example.com"}])
    services.unsubscribe(tenant_a.account, ml.pk, ["B@example.com"])
    response = client.get(URL + f"unsubscribe-export&id={ml.pk}", **tenant_a.headers)
    assert response.status_code == 200 and response["Content-Type"] == "text/plain; charset=utf-8"
    lines = b"".join(response.streaming_content).decode().splitlines()
    [line] = lines
    when, email = line.split("\t")
    assert email == "b@example.com" and len(when) == 19 and when[4] == "-" and when[13] == ":"


def test_delete_refused_while_importing(client, tenant_a):
    ml = services.create_list(tenant_a.account, "L")
    MailList.objects.filter(pk=ml.pk).update(importing=True)
    response = client.get(URL + f"maillist-del&id={ml.pk}", **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == "delete_maillist_error"
    assert MailList.objects.filter(pk=ml.pk).exists()
    assert parse(client.get(URL + f"maillist-detail&id={ml.pk}", **tenant_a.headers).content).findtext(
        "input_status") == "1"


def test_manager_acts_for_sub_account(client, make_tenant):
    from hub.models import Account

    manager = make_tenant("mgr", is_manager=True)
    child = Account.objects.create(name="kid", parent=manager.account)
    other = make_tenant("other")
    response = client.post(URL + f"maillist-add&customer_id={child.pk}&user_type=manager",
                           {"subject": "kid list", "status": "enabled"}, **manager.headers)
    assert envelope(response)[0] == "success"
    assert MailList.objects.get().account == child
    response = client.post(URL + f"maillist-add&customer_id={other.account.pk}&user_type=manager",
                           {"subject": "nope", "status": "enabled"}, **manager.headers)
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"
    assert MailList.objects.count() == 1
