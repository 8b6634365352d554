"""V28 5.2-5.8 (template.php), called as the reference's samples do: PHP curl multipart
with `file` / `file[]`, C# urlencoded POST, GET query strings. XML parsed and checked;
refusals write nothing; another account's ids are not_exist."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from hub.mailtemplates import services
from hub.mailtemplates.check import run_check
from hub.mailtemplates.models import Template, TemplateAttachment

from .helpers import envelope, fields, parse

URL = "/mm-ms/apinew/template.php?do="
HTML = '<p>你好 {{fullname|朋友}} <b>&amp;</b> ]]> end</p><a href="{{unsubscribe_url}}">退订</a>'


def make(tenant, **kwargs) -> Template:
    values = {"name": "模板", "subjects": "主题一|主题二", "html": HTML, **kwargs}
    return services.create_template(tenant.account, **values)


def nothing_written() -> None:
    assert Template.objects.count() == 0 and TemplateAttachment.objects.count() == 0


def test_php_sample_multipart_add_then_status_list_edit_delete_over_http(live_server, tenant_a):
    base = f"{live_server.url}/mm-ms/apinew/template.php"
    # 5.2's PHP sample: CURLOPT_POSTFIELDS array with a file -> multipart; list_id is ignored.
    response = requests.post(f"{base}?do=add-tpl", auth=tenant_a.auth, timeout=10,
                             data={"list_id": "1176005", "name": "cesshi", "subject": "subject|第二个 {{fullname}}",
                                   "content": HTML},
                             files=[("file", ("121.jpg", b"\xff\xd8jpeg", "image/jpeg"))])
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/xml; charset=utf-8"
    status, tpl_id = envelope(response)
    assert status == "success" and b"CDATA" not in response.content  # <data>ID</data>
    t = Template.objects.get(pk=int(tpl_id))
    assert t.account == tenant_a.account and t.subjects == ["subject", "第二个 {{fullname}}"]
    assert [(a.filename, a.content_type, bytes(a.content)) for a in t.attachments.all()] == [
        ("121.jpg", "image/jpeg", b"\xff\xd8jpeg")]

    # 5.3 while the check has not run: status -1, colour empty, size_status -1.
    root = parse(requests.get(f"{base}?do=get-tpl-status&tpl_id={tpl_id}", auth=tenant_a.auth, timeout=10).content)
    assert root.tag == "template"
    assert [c.tag for c in root] == ["id", "name", "status", "colour", "update_date", "size_status", "size", "subject"]
    assert (root.findtext("status"), root.findtext("colour"), root.findtext("size_status")) == ("-1", "", "-1")
    run_check(t.pk, t.revision)
    root = parse(requests.get(f"{base}?do=get-tpl-status&tpl_id={tpl_id}", auth=tenant_a.auth, timeout=10).content)
    assert fields(root)[:4] == [("id", tpl_id), ("name", "cesshi"), ("status", "1"), ("colour", "green")]
    assert root.findtext("size_status") == "1" and int(root.findtext("size")) >= 1
    assert root.findtext("subject") == "subject|第二个 {{fullname}}"
    assert len(root.findtext("update_date")) == 19

    # 5.6 by GET, as its sample URL.
    response = requests.get(f"{base}?do=edit-tpl&tpl_id={tpl_id}&name=linbihuan&subject=sub&content=content",
                            auth=tenant_a.auth, timeout=10)
    assert envelope(response)[0] == "success"
    t.refresh_from_db()
    assert (t.name, t.subjects, t.html, t.check_status) == ("linbihuan", ["sub"], "content", -1)

    response = requests.get(f"{base}?do=del-tpl&tpl_id={tpl_id}", auth=tenant_a.auth, timeout=10)
    assert envelope(response)[0] == "success"
    nothing_written()


def test_csharp_sample_urlencoded_post(client, tenant_a):
    # 5.2's C# sample: "&name=...&subject=...&content=..." as x-www-form-urlencoded.
    sub = "中国（上海）国际婚纱摄影器材展览会展周边报价单<盟轩：客服-admin>"
    body = f"&name={quote('admin模版')}&subject={quote(sub)}&content={quote(HTML)}"
    response = client.post(URL + "add-tpl", body, content_type="application/x-www-form-urlencoded; charset=UTF-8",
                           **tenant_a.headers)
    status, tpl_id = envelope(response)
    assert status == "success"
    t = Template.objects.get(pk=int(tpl_id))
    assert t.subjects == [sub] and t.html == HTML and t.encoding == "base64"


def test_list_tpl_shape_subjects_cdata_attachments(client, tenant_a, tenant_b):
    t = make(tenant_a, files=[services.FileIn("报价.pdf", "application/pdf", b"%PDF")])
    make(tenant_a, name="第二")
    make(tenant_b, name="别人的")
    response = client.get(URL + "list-tpl", **tenant_a.headers)
    assert b"<name><![CDATA[\xe6\xa8\xa1\xe6\x9d\xbf]]></name>" in response.content
    assert b"<content><![CDATA[" in response.content
    root = parse(response)
    assert root.tag == "template_list"
    first, second = root.findall("template")
    assert [c.tag for c in first] == ["id", "user_id", "name", "subject", "subject", "content", "content_type",
                                      "attachments", "created", "updated"]
    assert first.findtext("id") == str(t.pk) and first.findtext("user_id") == str(tenant_a.account.pk)
    assert [(s.findtext("id"), s.findtext("name")) for s in first.findall("subject")] == [("1", "主题一"),
                                                                                        ("2", "主题二")]
    assert first.findtext("content") == HTML  # "]]>" split across two CDATA sections, read back whole
    assert first.findtext("content_type") == "text/html"
    [att] = first.find("attachments")
    assert fields(att) == [("atta_id", str(t.attachments.get().pk)), ("atta_name", "报价.pdf")]
    assert second.findtext("name") == "第二" and list(second.find("attachments")) == []
    # tpl_id: only that one (5.4 sample URL list-tpl&tpl_id=67).
    root = parse(client.get(URL + f"list-tpl&tpl_id={t.pk}", **tenant_a.headers))
    assert [x.findtext("id") for x in root.findall("template")] == [str(t.pk)]
    assert parse(client.get(URL + "list-tpl", **tenant_b.headers)).find("template").findtext("name") == "别人的"


def test_attachment_add_file_array_and_delete_one_and_all(client, tenant_a):
    t = make(tenant_a)
    # 5.7: tpl_id in the query string, files as file[] (several) and file.
    response = client.post(URL + f"tpl-attachment-add&tpl_id={t.pk}", {
        "file[]": [SimpleUploadedFile("a.txt", b"aaa", "text/plain"), SimpleUploadedFile("b.png", b"png", "image/png")],
        "file": SimpleUploadedFile("c.pdf", b"%PDF", "application/pdf")}, **tenant_a.headers)
    status, ids = envelope(response)
    assert status == "success"
    assert sorted(t.attachments.values_list("filename", flat=True)) == ["a.txt", "b.png", "c.pdf"]
    assert sorted(int(i) for i in ids.split(",")) == sorted(t.attachments.values_list("pk", flat=True))
    first = int(ids.split(",")[0])
    response = client.get(URL + f"tpl-attachment-del&tpl_id={t.pk}&attachment_id={first}", **tenant_a.headers)
    assert envelope(response)[0] == "success" and t.attachments.count() == 2
    # attachment_id omitted: "all" (5.8's default); tpl_id may be POSTed.
    response = client.post(URL + "tpl-attachment-del", {"tpl_id": t.pk}, **tenant_a.headers)
    assert envelope(response)[0] == "success"
    assert t.attachments.count() == 0


@pytest.mark.parametrize("data,ident,http", [
    ({"subject": "s", "content": HTML}, "param_error", 400),
    ({"name": "n", "content": HTML}, "param_error", 400),
    ({"name": "n", "subject": "s"}, "param_error", 400),
    ({"name": "n", "subject": "s", "content": HTML, "encoding": "8bit"}, "invalid_encoding", 400),
    ({"name": "n", "subject": "a|" * 30, "content": HTML}, "invalid_subject", 400),
    ({"name": "n", "subject": "s", "content": HTML, "file": "@/tmp/121.jpg"}, "param_error", 400),
])
def test_add_refusals_write_nothing(client, tenant_a, data, ident, http):
    response = client.post(URL + "add-tpl", data, **tenant_a.headers)
    assert response.status_code == http and envelope(response)[0] == ident
    nothing_written()


def test_add_refusals_for_size_and_method(client, tenant_a, settings):
    settings.HUB_MAX_ATTACHMENT_BYTES = 5
    response = client.post(URL + "add-tpl", {"name": "n", "subject": "s", "content": HTML,
                                             "file[]": [SimpleUploadedFile("a.bin", b"123456")]}, **tenant_a.headers)
    assert response.status_code == 413 and envelope(response)[0] == "too_large"
    response = client.get(URL + "add-tpl&name=n&subject=s&content=c", **tenant_a.headers)
    assert response.status_code == 405 and envelope(response)[0] == "method_not_allowed"
    settings.HUB_TEMPLATE_MAX_BODY_BYTES = 10
    response = client.post(URL + "add-tpl", {"name": "n", "subject": "s", "content": HTML}, **tenant_a.headers)
    assert envelope(response)[0] == "param_error"  # over the parameter cap
    nothing_written()


def test_edit_refusals_change_nothing(client, tenant_a):
    t = make(tenant_a)
    before = Template.objects.values().get(pk=t.pk)
    for query, ident in ((f"edit-tpl&tpl_id={t.pk}", "param_error"),
                         (f"edit-tpl&tpl_id={t.pk}&name=ok&encoding=7bit", "invalid_encoding"),
                         (f"edit-tpl&tpl_id={t.pk}&subject=%7C", "invalid_subject"),
                         ("edit-tpl", "param_error"), ("edit-tpl&tpl_id=abc&name=x", "param_error")):
        assert envelope(client.get(URL + query, **tenant_a.headers))[0] == ident, query
    assert Template.objects.values().get(pk=t.pk) == before
    # text_content alone is accepted ((e) #38), and sent empty clears it.
    assert envelope(client.post(URL + f"edit-tpl&tpl_id={t.pk}", {"text_content": "纯文本"}, **tenant_a.headers))[0] \
        == "success"
    assert Template.objects.get(pk=t.pk).text == "纯文本"
    assert envelope(client.post(URL + f"edit-tpl&tpl_id={t.pk}", {"text_content": ""}, **tenant_a.headers))[0] \
        == "success"
    assert Template.objects.get(pk=t.pk).text == ""


def test_attachment_refusals_write_nothing(client, tenant_a, settings):
    t = make(tenant_a)
    response = client.post(URL + f"tpl-attachment-add&tpl_id={t.pk}", {}, **tenant_a.headers)
    assert envelope(response)[0] == "param_error"
    settings.HUB_MAX_ATTACHMENTS = 1
    response = client.post(URL + f"tpl-attachment-add&tpl_id={t.pk}",
                           {"file[]": [SimpleUploadedFile("a", b"a"), SimpleUploadedFile("b", b"b")]}, **tenant_a.headers)
    assert envelope(response)[0] == "too_many_attachments"
    response = client.get(URL + f"tpl-attachment-add&tpl_id={t.pk}", **tenant_a.headers)
    assert response.status_code == 405
    response = client.get(URL + f"tpl-attachment-del&tpl_id={t.pk}&attachment_id=999999", **tenant_a.headers)
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"
    assert TemplateAttachment.objects.count() == 0


def test_another_accounts_template_is_not_exist(client, tenant_a, tenant_b):
    t = make(tenant_a, files=[services.FileIn("a.txt", "", b"a")])
    before = Template.objects.values().get(pk=t.pk)
    for query in (f"get-tpl-status&tpl_id={t.pk}", f"list-tpl&tpl_id={t.pk}", f"del-tpl&tpl_id={t.pk}",
                  f"edit-tpl&tpl_id={t.pk}&name=x", f"tpl-attachment-del&tpl_id={t.pk}",
                  f"get-tpl-status&tpl_id={t.pk + 1000}"):
        response = client.get(URL + query, **tenant_b.headers)
        assert response.status_code == 404 and envelope(response)[0] == "not_exist", query
    response = client.post(URL + f"tpl-attachment-add&tpl_id={t.pk}", {"file": SimpleUploadedFile("b", b"b")},
                           **tenant_b.headers)
    assert envelope(response)[0] == "not_exist"
    assert Template.objects.values().get(pk=t.pk) == before and t.attachments.count() == 1


def test_manager_acts_for_sub_account_with_customer_id(client, make_tenant):
    manager = make_tenant("boss", is_manager=True)
    sub = make_tenant("sub")
    sub.account.parent = manager.account
    sub.account.save()
    response = client.post(URL + f"add-tpl&customer_id={sub.account.pk}",
                           {"name": "代建", "subject": "s", "content": HTML}, **manager.headers)
    status, tpl_id = envelope(response)
    assert status == "success" and Template.objects.get(pk=int(tpl_id)).account == sub.account
    stranger = make_tenant("x")
    response = client.get(URL + f"list-tpl&customer_id={stranger.account.pk}", **manager.headers)
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"


def test_unauthenticated_is_refused(client, tenant_a):
    response = client.post(URL + "add-tpl", {"name": "n", "subject": "s", "content": HTML})
    assert response.status_code == 401 and envelope(response)[0] == "auth_error"
    nothing_written()
