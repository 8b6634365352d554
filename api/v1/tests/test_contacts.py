"""Native API: lists, contacts, batch, subscriptions, export, imports; refusals write
nothing; another account's ids are not found."""

from __future__ import annotations

import requests

from hub.contacts import services
from hub.contacts.models import Contact, ImportJob, MailList


def test_lists_and_contacts_over_http(live_server, tenant_a):
    base = f"{live_server.url}/api/v1"
    s = requests.Session()
    s.auth = tenant_a.auth
    created = s.post(f"{base}/lists", json={"name": "会员", "description": "d"}, timeout=10)
    assert created.status_code == 201
    list_id = created.json()["id"]
    assert s.get(f"{base}/lists", timeout=10).json()[0]["name"] == "会员"
    patched = s.patch(f"{base}/lists/{list_id}", json={"enabled": False}, timeout=10).json()
    assert patched["enabled"] is False and patched["name"] == "会员"
    one = s.post(f"{base}/lists/{list_id}/contacts", json={"email": "A@Example.com", "fullname": "张三",
                                                           "birthday": "1990-01-02"}, timeout=10)
    assert one.status_code == 201 and one.json()["email"] == "a@example.com" and one.json()["birthday"] == "1990-01-02"
    batch = s.post(f"{base}/lists/{list_id}/contacts/batch",
                   json={"contacts": [{"email": f"u{i}@example.com"} for i in range(5)]}, timeout=10)
    assert batch.json() == {"added": 5, "invalid": 0, "duplicate": 0, "errors": []}
    page = s.get(f"{base}/lists/{list_id}/contacts?limit=4", timeout=10).json()
    assert page["total"] == 6 and len(page["results"]) == 4 and page["next_after_id"] == page["results"][-1]["id"]
    rest = s.get(f"{base}/lists/{list_id}/contacts?limit=4&after_id={page['next_after_id']}", timeout=10).json()
    assert len(rest["results"]) == 2 and rest["next_after_id"] is None
    found = s.get(f"{base}/lists/{list_id}/contacts?q=张", timeout=10).json()
    assert [c["email"] for c in found["results"]] == ["a@example.com"]
    contact_id = found["results"][0]["id"]
    assert s.get(f"{base}/contacts/{contact_id}", timeout=10).json()["fullname"] == "张三"
    assert s.delete(f"{base}/contacts/{contact_id}", timeout=10).status_code == 204
    assert s.post(f"{base}/lists/{list_id}/unsubscribe", json={"emails": ["u1@example.com"]}, timeout=10).ok
    export = s.get(f"{base}/lists/{list_id}/unsubscribed", timeout=10)
    assert export.headers["Content-Type"] == "text/csv; charset=utf-8"
    lines = export.text.splitlines()
    assert lines[0] == "unsubscribed_at,email" and lines[1].endswith(",u1@example.com")
    assert s.post(f"{base}/lists/{list_id}/subscribe", json={"text": "n@example.com,新"}, timeout=10).json()["added"] == 1
    assert s.post(f"{base}/lists/{list_id}/empty", timeout=10).json() == {"removed": 6}
    assert s.delete(f"{base}/lists/{list_id}", timeout=10).status_code == 204


def test_import_upload_status_and_log(live_server, tenant_a, settings, tmp_path, run_queue):
    settings.HUB_IMPORT_DIR = tmp_path
    ml = services.create_list(tenant_a.account, "L")
    base = f"{live_server.url}/api/v1"
    response = requests.post(f"{base}/lists/{ml.pk}/imports", auth=tenant_a.auth, timeout=10,
                             files={"file": ("a.csv", "email,name\na@example.com,甲\nbad,x\n".encode("gbk"))})
    assert response.status_code == 202
    job = response.json()
    assert job["finished"] is False and job["list_id"] == ml.pk
    run_queue()
    done = requests.get(f"{base}/imports/{job['id']}", auth=tenant_a.auth, timeout=10).json()
    assert done["status"] == 1 and done["count_imported"] == 1 and done["count_invalid"] == 1
    log = requests.get(f"{base}/imports", auth=tenant_a.auth, timeout=10).json()
    assert [j["id"] for j in log] == [job["id"]]
    assert Contact.objects.get().fullname == "甲"


def test_batch_refusals_write_nothing(client, tenant_a):
    ml = services.create_list(tenant_a.account, "L")
    url = f"/api/v1/lists/{ml.pk}/contacts/batch"
    cases = [
        ({"contacts": [{"email": "ok@example.com"}, {"email": "broken"}]}, "invalid_records"),
        ({"text": "ok@example.com\nbroken;x\n"}, "invalid_records"),
        ({"contacts": [{"email": f"u{i}@example.com"} for i in range(501)]}, "invalid"),
        ({"text": "\n".join(f"u{i}@example.com" for i in range(501))}, "too_many_records"),
        ({}, "invalid"),
        ({"contacts": [{"email": "a@example.com", "sex": "X"}]}, "invalid"),
    ]
    for body, code in cases:
        response = client.post(url, body, content_type="application/json", **tenant_a.headers)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == code, response.json()
    assert Contact.objects.count() == 0
    # skip_invalid: the valid ones go in, the rest are reported.
    response = client.post(url, {"contacts": [{"email": "ok@example.com"}, {"email": "broken"}], "skip_invalid": True},
                           content_type="application/json", **tenant_a.headers)
    assert response.json()["added"] == 1 and response.json()["invalid"] == 1


def test_refusals(client, tenant_a):
    h = tenant_a.headers
    assert client.post("/api/v1/lists", {"name": ""}, content_type="application/json", **h).status_code == 400
    assert client.post("/api/v1/lists", "{", content_type="application/json", **h).json()["error"]["code"] == \
        "parse_error"
    bad = client.post("/api/v1/lists", {"name": "a\ud800"}, content_type="application/json", **h)
    assert bad.status_code == 400 and bad.json()["error"]["details"]["name"]
    assert client.put("/api/v1/lists", {}, content_type="application/json", **h).status_code == 405
    assert MailList.objects.count() == 0
    ml = services.create_list(tenant_a.account, "L")
    services.add_contact(tenant_a.account, ml.pk, "a@example.com")
    dup = client.post(f"/api/v1/lists/{ml.pk}/contacts", {"email": "A@example.com"}, content_type="application/json",
                      **h)
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "exist"
    assert client.post(f"/api/v1/lists/{ml.pk}/imports", {}, **h).status_code == 400
    assert ImportJob.objects.count() == 0 and Contact.objects.count() == 1


def test_body_cap(client, tenant_a, settings):
    settings.HUB_V28_MAX_REQUEST_BYTES = 100
    response = client.post("/api/v1/lists", {"name": "x" * 200}, content_type="application/json", **tenant_a.headers)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert MailList.objects.count() == 0


def test_cross_account(client, tenant_a, tenant_b, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.HUB_IMPORT_DIR = tmp_path
    theirs = services.create_list(tenant_b.account, "secret list")
    services.add_contact(tenant_b.account, theirs.pk, "secret@b.example")
    contact = Contact.objects.get()
    job = services.start_import(tenant_b.account, theirs.pk, SimpleUploadedFile("b.txt", b"x@b.example\n"), "b.txt",
                                queue=False)
    h = tenant_a.headers
    j = {"content_type": "application/json", **h}
    calls = [
        client.get(f"/api/v1/lists/{theirs.pk}", **h),
        client.patch(f"/api/v1/lists/{theirs.pk}", {"name": "x"}, **j),
        client.delete(f"/api/v1/lists/{theirs.pk}", **h),
        client.get(f"/api/v1/lists/{theirs.pk}/contacts", **h),
        client.post(f"/api/v1/lists/{theirs.pk}/contacts", {"email": "n@example.com"}, **j),
        client.post(f"/api/v1/lists/{theirs.pk}/contacts/batch", {"text": "n@example.com"}, **j),
        client.post(f"/api/v1/lists/{theirs.pk}/empty", **h),
        client.post(f"/api/v1/lists/{theirs.pk}/subscribe", {"text": "n@example.com"}, **j),
        client.post(f"/api/v1/lists/{theirs.pk}/unsubscribe", {"emails": ["secret@b.example"]}, **j),
        client.get(f"/api/v1/lists/{theirs.pk}/unsubscribed", **h),
        client.post(f"/api/v1/lists/{theirs.pk}/imports", {"file": SimpleUploadedFile("a.txt", b"n@a.b\n")}, **h),
        client.get(f"/api/v1/imports/{job.pk}", **h),
        client.get(f"/api/v1/contacts/{contact.pk}", **h),
        client.delete(f"/api/v1/contacts/{contact.pk}", **h),
    ]
    for response in calls:
        assert response.status_code == 404, (response.request, response.content)
        assert response.json()["error"]["code"] == "not_found"
    assert list(Contact.objects.values_list("email", "subscribed")) == [("secret@b.example", True)]
    assert MailList.objects.get().name == "secret list" and ImportJob.objects.count() == 1
    assert client.get("/api/v1/lists", **h).json() == []
    assert client.get("/api/v1/imports", **h).json() == []


def test_manager_for_sub_account(client, make_tenant):
    from hub.models import Account

    manager = make_tenant("mgr", is_manager=True)
    child = Account.objects.create(name="kid", parent=manager.account)
    other = make_tenant("other")
    response = client.post(f"/api/v1/lists?customer_id={child.pk}", {"name": "kid list"},
                           content_type="application/json", **manager.headers)
    assert response.status_code == 201 and MailList.objects.get().account == child
    response = client.post(f"/api/v1/lists?customer_id={other.account.pk}", {"name": "x"},
                           content_type="application/json", **manager.headers)
    assert response.status_code == 404 and MailList.objects.count() == 1
