"""V28 4.7-4.13: the addresses of a list (mloperate.php ml-*)."""

from __future__ import annotations

import pytest
import requests

from hub.contacts import services
from hub.contacts.models import Contact, ImportJob

from .helpers import content, envelope, parse

URL = "/apinew/mloperate.php?do="
ADDR_FIELDS = ["id", "list_id", "address", "brithday", "phone", "area", "fullname", "time",
               *(f"var{i}" for i in range(1, 11))]
ML_ADDR = ("Coming1@bestdem.org;coming1;M;1986-08-10;13528775968;北京;var1;var2;\n"
           "test@bestdem.org; test;F;1986-08-10;13528775968;area;v1;v2;v3;v4;v5;v6;v7;v8;v9;v10;\n")


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.HUB_IMPORT_DIR = tmp_path / "imports"


@pytest.fixture
def lists(tenant_a, tenant_b):
    return services.create_list(tenant_a.account, "A"), services.create_list(tenant_b.account, "B")


def test_batch_add_then_list_over_http(live_server, tenant_a, lists):
    mine, _ = lists
    base = f"{live_server.url}/mm-ms/apinew/mloperate.php"
    # 4.8.2: list_id in the query string, ml_addr POSTed (a newline is %0A once encoded).
    response = requests.post(f"{base}?do=ml-addr-add&list_id={mine.pk}", auth=tenant_a.auth, timeout=10,
                             data={"ml_addr": ML_ADDR})
    assert response.status_code == 200
    assert envelope(response) == ("success", "2")
    # The 9.4 PHP sample: ?do=ml-addr-list&list_id=...&page=1&limit=1
    response = requests.get(f"{base}?do=ml-addr-list&list_id={mine.pk}&page=1&limit=1", auth=tenant_a.auth,
                            timeout=10)
    root = parse(response.content)
    assert root.tag == "data" and [c.tag for c in root] == ["total_num", "addr"]
    assert root.findtext("total_num") == "2"
    addr = root.find("addr")
    assert [c.tag for c in addr] == ADDR_FIELDS
    assert b"<address><![CDATA[coming1@bestdem.org]]></address>" in response.content
    assert b"<area><![CDATA[\xe5\x8c\x97\xe4\xba\xac]]></area>" in response.content
    values = {c.tag: c.text or "" for c in addr}
    assert values["address"] == "coming1@bestdem.org" and values["brithday"] == "1986-08-10"
    assert values["phone"] == "13528775968" and values["area"] == "北京" and values["fullname"] == "coming1"
    assert values["list_id"] == str(mine.pk) and values["var1"] == "var1" and values["var3"] == ""
    assert len(values["time"]) == 19
    # Without page: everything (streamed), in id order.
    response = requests.get(f"{base}?do=ml-addr-list&list_id={mine.pk}", auth=tenant_a.auth, timeout=10)
    root = parse(response.content)
    assert [a.findtext("address") for a in root.findall("addr")] == ["coming1@bestdem.org", "test@bestdem.org"]
    assert root.find("addr[2]").findtext("var10") == "v10"


def test_single_add(client, tenant_a, lists):
    mine, _ = lists
    response = client.get(URL + f"ml-addr-add&list_id={mine.pk}&address=A@Example.com&fullname=张三&sex=F"
                          "&birthday=1990-01-02&phone=1&area=上海&Var10=ten&return_id=1", **tenant_a.headers)
    status, data = envelope(response)
    contact = Contact.objects.get()
    assert status == "success" and data == str(contact.pk)
    assert contact.email == "a@example.com" and contact.var10 == "ten" and contact.sex == "F"
    # All parameters except username/password/do may be POSTed.
    response = client.post(URL + "ml-addr-add", {"list_id": mine.pk, "address": "b@example.com"}, **tenant_a.headers)
    assert envelope(response)[0] == "success" and Contact.objects.count() == 2
    response = client.get(URL + f"ml-addr-add&list_id={mine.pk}&address=a@EXAMPLE.com", **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == "exist"
    assert Contact.objects.count() == 2


@pytest.mark.parametrize("query,ident", [
    ("&address=x@example.com", "param_error"),
    ("&list_id={list}", "param_error"),
    ("&list_id={list}&address=not-an-address", "invalid_email"),
    ("&list_id={list}&address=a@example.com&sex=X", "invalid_field"),
    ("&list_id={list}&address=a@example.com&birthday=1990-13-45", "invalid_field"),
    ("&list_id={list}&address=a@example.com&return_id=2", "param_error"),
])
def test_single_add_refusals(client, tenant_a, lists, query, ident):
    response = client.get(URL + "ml-addr-add" + query.format(list=lists[0].pk), **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == ident
    assert Contact.objects.count() == 0


@pytest.mark.parametrize("data,query,ident", [
    ({"ml_addr": "good@example.com;ok\nbroken-line;x\n"}, "", "format_error"),
    ({"ml_addr": "a@example.com;n;Q\n"}, "", "format_error"),
    ({"ml_addr": "a@example.com;" + ";".join(["x"] * 20)}, "", "format_error"),
    ({"ml_addr": "\n".join(f"u{i}@example.com" for i in range(501))}, "", "too_many_records"),
    ({"ml_addr": "a@example.com"}, "&addr_type=json", "param_error"),
    ({"ml_addr": "  "}, "", "param_error"),
])
def test_batch_refusals_write_nothing(client, tenant_a, lists, data, query, ident):
    response = client.post(URL + f"ml-addr-add&list_id={lists[0].pk}{query}", data, **tenant_a.headers)
    assert response.status_code == 400
    status, message = envelope(response)
    assert status == ident and message
    assert Contact.objects.count() == 0
    if ident == "format_error":
        assert "line 2" in message or "line 1" in message


def test_batch_in_query_string_is_refused(client, tenant_a, lists):
    response = client.get(URL + f"ml-addr-add&list_id={lists[0].pk}&ml_addr=a@example.com", **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == "param_error"
    assert Contact.objects.count() == 0


def test_batch_custom_separator_and_exact_500(client, tenant_a, lists):
    response = client.post(URL + f"ml-addr-add&list_id={lists[0].pk}&separate=|",
                           {"ml_addr": "a@example.com;A|b@example.com;B|a@example.com"}, **tenant_a.headers)
    assert envelope(response) == ("success", "2")
    text = "\n".join(f"u{i}@example.com" for i in range(500))
    response = client.post(URL + f"ml-addr-add&list_id={lists[0].pk}", {"ml_addr": text}, **tenant_a.headers)
    assert envelope(response) == ("success", "500")


def test_body_cap(client, tenant_a, lists, settings):
    settings.HUB_V28_MAX_REQUEST_BYTES = 1000
    response = client.post(URL + f"ml-addr-add&list_id={lists[0].pk}", {"ml_addr": "a@example.com\n" * 200},
                           **tenant_a.headers)
    assert response.status_code == 413 and envelope(response)[0] == "too_large"
    assert Contact.objects.count() == 0


def test_list_one_address_keyword_and_paging(client, tenant_a, lists):
    mine, _ = lists
    services.add_contacts(tenant_a.account, mine.pk, [{"email": f"u{i}@example.com", "fullname": f"名{i}"}
                                                     for i in range(5)])
    one = Contact.objects.get(email="u3@example.com")
    root = parse(client.get(URL + f"ml-addr-list&list_id={mine.pk}&address_id={one.pk}", **tenant_a.headers))
    assert root.findtext("total_num") == "1" and root.find("addr").findtext("id") == str(one.pk)
    root = parse(client.get(URL + f"ml-addr-list&list_id={mine.pk}&keyword=名4", **tenant_a.headers))
    assert [a.findtext("address") for a in root.findall("addr")] == ["u4@example.com"]
    root = parse(client.get(URL + f"ml-addr-list&list_id={mine.pk}&page=2&limit=2", **tenant_a.headers))
    assert root.findtext("total_num") == "5"
    assert [a.findtext("address") for a in root.findall("addr")] == ["u2@example.com", "u3@example.com"]
    # No list_id: all the account's lists; 0: unclassified (none here).
    root = parse(client.get(URL + "ml-addr-list", **tenant_a.headers))
    assert root.findtext("total_num") == "5" and len(root.findall("addr")) == 5
    root = parse(client.get(URL + "ml-addr-list&list_id=0", **tenant_a.headers))
    assert root.findtext("total_num") == "0" and root.findall("addr") == []
    for bad in ("&page=0", "&page=x", "&limit=501", "&list_id=x"):
        response = client.get(URL + "ml-addr-list" + bad, **tenant_a.headers)
        assert response.status_code == 400 and envelope(response)[0] == "param_error", bad


def test_delete_empty(client, tenant_a, lists):
    mine, _ = lists
    services.add_contacts(tenant_a.account, mine.pk, [{"email": f"u{i}@example.com"} for i in range(3)])
    first = Contact.objects.order_by("id").first()
    assert envelope(client.get(URL + f"ml-addr-del&id={first.pk}", **tenant_a.headers))[0] == "success"
    response = client.get(URL + f"ml-addr-del&id={first.pk}", **tenant_a.headers)
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"
    status, message = envelope(client.get(URL + f"ml-addr-empty&list_id={mine.pk}", **tenant_a.headers))
    assert status == "success" and "2" in message
    assert Contact.objects.count() == 0
    assert client.get(URL + "ml-addr-empty", **tenant_a.headers).status_code == 400


def test_subscribe_unsubscribe_formats(client, tenant_a, lists):
    mine, _ = lists
    response = client.get(URL + f"ml-sub&list_id={mine.pk}&address=test@bestedm.com", **tenant_a.headers)
    assert envelope(response)[0] == "success"
    assert Contact.objects.get(email="test@bestedm.com").fullname == "test"  # name defaults to the local part
    response = client.post(URL + f"ml-sub&list_id={mine.pk}",
                           {"maillist": "test1@bestedm.com, test1; test2@bestedm.com, test2;"}, **tenant_a.headers)
    assert envelope(response)[0] == "success"
    response = client.post(URL + f"ml-sub&list_id={mine.pk}", {"maillist": "t3@bestedm.com\tt3\nt4@bestedm.com,t4"},
                           **tenant_a.headers)
    assert envelope(response)[0] == "success"
    assert Contact.objects.filter(subscribed=True).count() == 5
    response = client.post(URL + f"ml-unsub&list_id={mine.pk}", {"address": "test1@bestedm.com, test2@bestedm.com,"},
                           **tenant_a.headers)
    assert envelope(response)[0] == "success"
    response = client.get(URL + f"ml-unsub&list_id={mine.pk}&address=t3@bestedm.com", **tenant_a.headers)
    assert envelope(response)[0] == "success"
    assert set(Contact.objects.filter(subscribed=False).values_list("email", flat=True)) == {
        "test1@bestedm.com", "test2@bestedm.com", "t3@bestedm.com"}


@pytest.mark.parametrize("do,data,ident", [
    ("ml-sub", {}, "param_error"),
    ("ml-sub", {"maillist": "ok@example.com,ok;bad-address,x;"}, "format_error"),
    ("ml-sub", {"maillist": ";".join(f"u{i}@example.com" for i in range(501))}, "too_many_records"),
    ("ml-unsub", {}, "param_error"),
    ("ml-unsub", {"address": "ok@example.com,nope"}, "format_error"),
    ("ml-unsub", {"address": ",".join(f"u{i}@example.com" for i in range(501))}, "too_many_records"),
])
def test_subscription_refusals_write_nothing(client, tenant_a, lists, do, data, ident):
    response = client.post(URL + f"{do}&list_id={lists[0].pk}", data, **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == ident
    assert Contact.objects.count() == 0


def test_file_import_over_http_then_query_and_log(live_server, tenant_a, lists, run_queue):
    mine, _ = lists
    base = f"{live_server.url}/mm-ms/apinew/mloperate.php"
    content = "Coming1@bestdem.org;coming1;M;1986-08-10;13528775968;北京;var1;var2;\nbad;x\ncoming1@bestdem.org\n"
    # The reference's HTML form: POST multipart, list_id in the action URL, the field named "file".
    response = requests.post(f"{base}?do=ml-addr-add-file&list_id={mine.pk}", auth=tenant_a.auth, timeout=10,
                             files={"file": ("address.txt", content.encode(), "application/octet-stream")})
    assert response.status_code == 200
    assert b"<data><![CDATA[" in response.content
    status, job_id = envelope(response)
    assert status == "success"
    job = ImportJob.objects.get(pk=int(job_id))
    assert job.account == tenant_a.account
    response = requests.get(f"{base}?do=ml-addr-add-file-query&id={job_id}", auth=tenant_a.auth, timeout=10)
    assert envelope(response)[0] == "no_complete"
    run_queue()
    response = requests.get(f"{base}?do=ml-addr-add-file-query&id={job_id}", auth=tenant_a.auth, timeout=10)
    assert envelope(response)[0] == "success"
    response = requests.get(f"{base}?do=ml-addr-add-log", auth=tenant_a.auth, timeout=10)
    root = parse(response.content)
    assert root.tag == "result" and root.findtext("status") == "success"
    [log] = root.find("data").findall("address_log")
    assert [c.tag for c in log] == ["filename", "filepath", "time_import", "count_all", "count_err_1",
                                    "count_err_2", "status", "subject"]
    assert log.findtext("filename") == "address.txt" and "/" not in log.findtext("filepath")
    assert (log.findtext("count_all"), log.findtext("count_err_1"), log.findtext("count_err_2")) == ("3", "1", "1")
    assert log.findtext("status") == "1" and log.findtext("subject") == "A"
    assert Contact.objects.filter(mail_list=mine).count() == 1


def test_file_import_refusals(client, tenant_a, lists, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    mine, theirs = lists
    assert client.get(URL + f"ml-addr-add-file&list_id={mine.pk}", **tenant_a.headers).status_code == 405
    response = client.post(URL + f"ml-addr-add-file&list_id={mine.pk}", {}, **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == "param_error"
    response = client.post(URL + f"ml-addr-add-file&list_id={mine.pk}",
                           {"file": SimpleUploadedFile("a.xlsx", b"not a zip at all")}, **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[1]
    response = client.post(URL + "ml-addr-add-file", {"list_id": theirs.pk,
                                                      "file": SimpleUploadedFile("a.txt", b"a@example.com\n")},
                           **tenant_a.headers)
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"
    settings.HUB_V28_MAX_UPLOAD_BYTES = 100
    response = client.post(URL + f"ml-addr-add-file&list_id={mine.pk}",
                           {"file": SimpleUploadedFile("a.txt", b"a@example.com\n" * 50)}, **tenant_a.headers)
    assert response.status_code == 413 and envelope(response)[0] == "too_large"
    assert ImportJob.objects.count() == 0


def test_file_query_bad_ids(client, tenant_a):
    for suffix in ("", "&id=x", "&id=0"):
        response = client.get(URL + "ml-addr-add-file-query" + suffix, **tenant_a.headers)
        assert response.status_code == 400 and envelope(response)[0] == "error"
    response = client.get(URL + "ml-addr-add-file-query&id=12345", **tenant_a.headers)
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"


def test_cross_account_addresses(client, tenant_a, tenant_b, lists):
    from django.core.files.uploadedfile import SimpleUploadedFile

    _mine, theirs = lists
    services.add_contact(tenant_b.account, theirs.pk, "secret@b.example")
    theirs_contact = Contact.objects.get()
    job = services.start_import(tenant_b.account, theirs.pk, SimpleUploadedFile("b.txt", b"x@b.example\n"), "b.txt",
                                queue=False)
    h = tenant_a.headers
    calls = [
        client.get(URL + f"ml-addr-list&list_id={theirs.pk}", **h),
        client.get(URL + f"ml-addr-list&address_id={theirs_contact.pk}", **h),
        client.get(URL + f"ml-addr-add&list_id={theirs.pk}&address=n@example.com", **h),
        client.post(URL + f"ml-addr-add&list_id={theirs.pk}", {"ml_addr": "n@example.com"}, **h),
        client.post(URL + f"ml-addr-add-file&list_id={theirs.pk}", {"file": SimpleUploadedFile("a.txt", b"n@a.b\n")}, **h),
        client.get(URL + f"ml-addr-add-file-query&id={job.pk}", **h),
        client.get(URL + f"ml-addr-del&id={theirs_contact.pk}", **h),
        client.get(URL + f"ml-addr-empty&list_id={theirs.pk}", **h),
        client.get(URL + f"ml-sub&list_id={theirs.pk}&address=n@example.com", **h),
        client.get(URL + f"ml-unsub&list_id={theirs.pk}&address=secret@b.example", **h),
    ]
    for response in calls:
        assert response.status_code == 404 and envelope(response)[0] == "not_exist", response.content
    assert list(Contact.objects.values_list("email", "subscribed")) == [("secret@b.example", True)]
    assert ImportJob.objects.count() == 1
    # B's data never shows in A's listings.
    body = content(client.get(URL + "ml-addr-list", **h)) + client.get(URL + "ml-addr-add-log", **h).content
    assert b"secret@b.example" not in body and b"b.txt" not in body
    assert parse(client.get(URL + "ml-addr-list", **h)).findtext("total_num") == "0"
