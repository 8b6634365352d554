"""The templates pages of the admin: list and change pages, the sidebar item, the
sandboxed preview rendered for a chosen contact (escaped, tenancy), saving through the
services' rules, the check findings, send test through the hub to an SMTP sink, re-check
and red pass."""

from __future__ import annotations

from hub.contacts import services as contacts
from hub.mailtemplates import services
from hub.mailtemplates.models import Template
from hub.models import SendLog
from hub.tests.test_admin_support import body, messages_of

from .conftest import GOOD_HTML, checked

URL = "/admin/mailtemplates/template/"


def test_list_change_pages_and_sidebar(su, template):
    checked(template)
    page = body(su.get(URL))
    assert "月刊" in page and "Templates" in page and "/admin/mailtemplates/riskyphrase/" in page
    page = body(su.get(f"{URL}{template.pk}/change/"))
    assert "你好 {{fullname|朋友}}|十一月新品" in page  # subjects as A|B
    assert 'sandbox=""' in page and f"{URL}{template.pk}/preview/" in page and "No findings." in page
    assert su.get("/admin/mailtemplates/riskyphrase/").status_code == 200
    assert su.get(f"{URL}add/").status_code == 200


def test_findings_are_shown_each(su, account):
    t = checked(services.create_template(account, name="r", subjects="s",
                                         html='<p>x</p><script>x()</script><img src="a.png">'))
    page = body(su.get(f"{URL}{t.pk}/change/"))
    assert "Scripts are removed" in page and "has no {{unsubscribe_url}} link" in page
    assert "Images without alt text." in page


def test_preview_is_sandboxed_and_escapes_the_chosen_contact(su, account, other, template):
    ml = contacts.create_list(account, "l", "")
    contacts.add_contact(account, ml.pk, "x@example.com", fullname="<script>alert(1)</script>")
    other_list = contacts.create_list(other, "o", "")
    contacts.add_contact(other, other_list.pk, "y@example.com", fullname="别人的联系人")
    r = su.get(f"{URL}{template.pk}/preview/", {"email": "x@example.com"})
    assert r.status_code == 200
    assert "sandbox" in r["Content-Security-Policy"] and "script-src" not in r["Content-Security-Policy"]
    assert r["X-Frame-Options"] == "SAMEORIGIN"
    html = body(r)
    assert "你好 &lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "/unsubscribe/" in html and "/view/" in html  # the contact's signed links
    # Another account's contact is never used: the sample contact instead.
    html = body(su.get(f"{URL}{template.pk}/preview/", {"email": "y@example.com"}))
    assert "别人的联系人" not in html and "你好 朋友" in html
    page = body(su.get(f"{URL}{template.pk}/preview-page/", {"email": "y@example.com", "subject": "1"}))
    assert "No contact of this account has this address" in page and "十一月新品" in page
    assert 'sandbox=""' in page


def test_saving_in_the_admin_validates_and_queues_a_check(su, account, run_queue, django_capture_on_commit_callbacks):
    data = {"account": account.pk, "name": "后台", "subjects_input": "A|B {{var1|x}}", "html": GOOD_HTML, "text": "",
            "encoding": "quoted-printable", "attachments-TOTAL_FORMS": 0, "attachments-INITIAL_FORMS": 0}
    with django_capture_on_commit_callbacks(execute=True):
        r = su.post(f"{URL}add/", data)
    assert r.status_code == 302, body(r)[:3000]
    t = Template.objects.get()
    assert t.subjects == ["A", "B {{var1|x}}"] and t.encoding == "quoted-printable"
    assert run_queue() == 1
    t.refresh_from_db()
    assert t.colour == "green"
    r = su.post(f"{URL}{t.pk}/change/", {**data, "subjects_input": "a\r\nb|", "html": ""})
    assert r.status_code == 200 and Template.objects.get().subjects == ["A", "B {{var1|x}}"]


def test_send_test_is_delivered_to_the_sink(su, account, template, smtp_sink, make_server, make_app, run_queue):
    p = make_app(make_server(smtp_sink), account=account)
    services.add_attachments(account, template.pk, [services.FileIn("a.txt", "text/plain", b"hello")])
    ml = contacts.create_list(account, "l", "")
    contacts.add_contact(account, ml.pk, "z@example.com", fullname="<b>赵</b>")
    r = su.post(f"{URL}{template.pk}/send-test/", {"app": p.app.pk, "to": "ops@example.com",
                                                     "contact_email": "z@example.com"})
    assert r.status_code == 302
    row = SendLog.objects.get()
    assert row.status == "sent" and row.source == "admin" and row.app == p.app
    [received] = smtp_sink.messages
    msg = received.message
    assert msg["Subject"] == "你好 <b>赵</b>" and received.rcpt_tos == ["ops@example.com"]
    assert "你好 &lt;b&gt;赵&lt;/b&gt;" in msg.get_body(("html",)).get_content()
    assert [a.get_filename() for a in msg.iter_attachments()] == ["a.txt"]
    run_queue()
    assert len(smtp_sink.messages) == 1


def test_send_test_refuses_another_accounts_app(su, account, other, template, smtp_sink, make_server, make_app):
    p = make_app(make_server(smtp_sink), account=other)
    r = su.post(f"{URL}{template.pk}/send-test/", {"app": p.app.pk, "to": "ops@example.com"})
    assert r.status_code == 200 and "Select a valid choice" in body(r)
    assert SendLog.objects.count() == 0 and smtp_sink.messages == []


def test_red_pass_and_recheck(su, account, django_capture_on_commit_callbacks, run_queue):
    t = checked(services.create_template(account, name="r", subjects="s", html="<p>x</p>"))
    assert t.colour == "red"
    r = su.post(f"{URL}{t.pk}/red-pass/", {})
    assert r.status_code == 302
    t.refresh_from_db()
    assert (t.colour, t.check_status, t.red_pass_by) == ("red_pass", 1, "boss")
    with django_capture_on_commit_callbacks(execute=True):
        su.post(f"{URL}{t.pk}/recheck/", {})
    t.refresh_from_db()
    assert t.colour == "" and t.check_status == -1
    run_queue()
    t.refresh_from_db()
    assert t.colour == "red"
    r = su.post(f"{URL}{checked(services.create_template(account, name='g', subjects='s', html=GOOD_HTML)).pk}"
                "/red-pass/", {}, follow=True)
    assert any("Only a checked red template" in m for m in messages_of(r))


def test_pages_in_chinese(su, template):
    su.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    page = body(su.get(f"{URL}{checked(template).pk}/change/"))
    assert "邮件模板" in page and "没有发现问题。" in page and "发送测试邮件" in page


def test_live_preview_of_unsaved_changes(su, template):
    page = body(su.get(f"{URL}{template.pk}/change/"))
    assert 'formtarget="hub-preview"' in page and f"{URL}{template.pk}/preview-live/" in page
    r = su.post(f"{URL}{template.pk}/preview-live/", {"html": "<p>草稿 {{fullname|朋友}}</p><script>x()</script>"})
    assert r.status_code == 200 and "sandbox" in r["Content-Security-Policy"]
    assert "草稿 朋友" in body(r)  # rendered, not saved; the CSP keeps the script from running
    template.refresh_from_db()
    assert "草稿" not in template.html
    assert su.get(f"{URL}{template.pk}/preview-live/").status_code == 405
