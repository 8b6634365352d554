"""The contacts pages of the admin: lists, contacts (search, counters), the import page
(upload queues a job, the progress page and its JSON), streamed exports."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from hub.contacts import services
from hub.contacts.models import Contact, ImportJob, MailList
from hub.tests.test_admin_support import body

from .conftest import count_ok
from .importing import queued_tasks


def test_list_pages_render(su, account, mail_list):
    services.add_contact(account, mail_list.pk, "a@x.com", fullname="Ann")
    assert "客户" in body(su.get("/admin/contacts/maillist/"))
    page = body(su.get(f"/admin/contacts/maillist/{mail_list.pk}/change/"))
    assert "Import a file" in page and "Export unsubscribed" in page
    assert "a@x.com" in body(su.get("/admin/contacts/contact/"))
    assert su.get("/admin/contacts/importjob/").status_code == 200


def test_contact_search_exact_address_and_text(su, account, mail_list):
    services.add_contacts(account, mail_list.pk, [{"email": "ann@x.com", "fullname": "Ann"},
                                                  {"email": "bob@y.com", "fullname": "Bobby"}])
    page = body(su.get("/admin/contacts/contact/", {"q": "ANN@X.COM"}))
    assert "ann@x.com" in page and "bob@y.com" not in page
    page = body(su.get("/admin/contacts/contact/", {"q": "bobb"}))
    assert "bob@y.com" in page and "ann@x.com" not in page


def test_admin_add_and_delete_keep_the_counter(su, account, mail_list):
    fields = {"mail_list": mail_list.pk, "email": " New@X.com ", "fullname": "", "sex": "", "phone": "", "area": "",
              "subscribed": "on", **{f"var{i}": "" for i in range(1, 11)}}
    r = su.post("/admin/contacts/contact/add/", fields)
    assert r.status_code == 302, body(r)[:3000]
    contact = Contact.objects.get()
    assert (contact.email, contact.account_id) == ("new@x.com", account.pk)
    assert count_ok(mail_list) == 1
    r = su.post("/admin/contacts/contact/add/", {**fields, "email": "new@x.com"})
    assert r.status_code == 200 and "already in the list" in body(r)
    assert count_ok(mail_list) == 1
    r = su.post(f"/admin/contacts/contact/{contact.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert count_ok(mail_list) == 0


def test_admin_list_delete_removes_contacts(su, account, mail_list):
    services.add_contacts(account, mail_list.pk, [{"email": f"u{i}@x.com"} for i in range(5)])
    confirm = su.get(f"/admin/contacts/maillist/{mail_list.pk}/delete/")
    assert confirm.status_code == 200
    assert su.post(f"/admin/contacts/maillist/{mail_list.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not MailList.objects.exists() and not Contact.objects.exists()


def test_import_page_upload_queues_a_job_and_progress_follows_it(su, account, mail_list, run_queue):
    page = su.get(f"/admin/contacts/importjob/upload/?list={mail_list.pk}")
    assert page.status_code == 200 and 'type="file"' in body(page)
    upload = SimpleUploadedFile("list.csv", "邮箱,姓名\na@x.com,甲\nb@x.com,乙\nbad,丙\n".encode())
    r = su.post("/admin/contacts/importjob/upload/", {"mail_list": mail_list.pk, "file": upload})
    job = ImportJob.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/admin/contacts/importjob/{job.pk}/progress/"
    assert queued_tasks() == ["hub.contacts.tasks.run_import"]
    progress = body(su.get(r["Location"]))
    assert 'id="import-bar"' in progress and 'data-finished="0"' in progress
    assert su.get(f"/admin/contacts/importjob/{job.pk}/status.json").json()["finished"] is False

    run_queue()
    state = su.get(f"/admin/contacts/importjob/{job.pk}/status.json").json()
    assert (state["finished"], state["progress"], state["count_all"], state["count_imported"],
            state["count_invalid"]) == (True, 100, 3, 2, 1)
    assert 'data-finished="1"' in body(su.get(r["Location"]))


def test_import_page_refusal_shows_the_reason_and_writes_nothing(su, mail_list):
    upload = SimpleUploadedFile("list.xlsx", b"a@x.com\n")
    r = su.post("/admin/contacts/importjob/upload/", {"mail_list": mail_list.pk, "file": upload})
    assert r.status_code == 200 and "not an XLSX workbook" in body(r)
    assert not ImportJob.objects.exists() and queued_tasks() == []


def test_import_page_needs_permission(client, db, mail_list):
    from django.contrib.auth.models import User

    staff = User.objects.create_user("viewer", None, None, is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/contacts/importjob/upload/").status_code == 403


def test_exports_stream(su, account, mail_list):
    services.add_contact(account, mail_list.pk, "keep@x.com", fullname="=cmd()")
    services.unsubscribe(account, mail_list.pk, ["gone@x.com"])
    r = su.get(f"/admin/contacts/maillist/{mail_list.pk}/export-unsubscribed/")
    assert r.streaming
    when = timezone.localtime(Contact.objects.get(email="gone@x.com").unsubscribed_at)
    assert body(r) == f"{when:%Y-%m-%d %H:%M:%S}\tgone@x.com\n"
    r = su.get(f"/admin/contacts/maillist/{mail_list.pk}/export-csv/")
    assert r.streaming
    lines = body(r).splitlines()
    assert lines[0].lstrip("\ufeff").startswith("email,fullname,sex")
    assert lines[1].startswith("keep@x.com,'=cmd()")
