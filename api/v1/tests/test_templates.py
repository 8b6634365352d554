"""Native API: templates (create JSON or multipart with files, list, patch, delete),
attachments, the check; refusals write nothing; another account's ids are not found; the
OpenAPI schema lists the paths."""

from __future__ import annotations

import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from hub.mailtemplates import services
from hub.mailtemplates.check import run_check
from hub.mailtemplates.models import Template, TemplateAttachment

HTML = '<p>你好 {{fullname|朋友}}</p><a href="{{unsubscribe_url}}">退订</a>'


def test_templates_over_http(live_server, tenant_a):
    base = f"{live_server.url}/api/v1"
    s = requests.Session()
    s.auth = tenant_a.auth
    created = s.post(f"{base}/templates", json={"name": "月刊", "subjects": ["A", "B {{var1|x}}"], "html": HTML},
                     timeout=10)
    assert created.status_code == 201, created.text
    t = created.json()
    assert t["subjects"] == ["A", "B {{var1|x}}"] and t["status"] == -1 and t["colour"] == "" and t["attachments"] == []
    run_check(t["id"], Template.objects.get(pk=t["id"]).revision)
    check = s.get(f"{base}/templates/{t['id']}/check", timeout=10).json()
    assert check["colour"] == "green" and check["status"] == 1 and check["findings"] == []
    patched = s.patch(f"{base}/templates/{t['id']}", json={"subjects": "一|二", "encoding": "quoted-printable"},
                      timeout=10).json()
    assert patched["subjects"] == ["一", "二"] and patched["encoding"] == "quoted-printable" and patched["name"] == "月刊"
    added = s.post(f"{base}/templates/{t['id']}/attachments", files=[("files", ("a.txt", b"a", "text/plain")),
                                                                     ("files", ("b.txt", b"bb", "text/plain"))],
                   timeout=10)
    assert added.status_code == 201 and [a["size"] for a in added.json()] == [1, 2]
    one = added.json()[0]["id"]
    assert s.delete(f"{base}/templates/{t['id']}/attachments/{one}", timeout=10).json() == {"deleted": 1}
    assert s.delete(f"{base}/templates/{t['id']}/attachments", timeout=10).json() == {"deleted": 1}
    assert [x["name"] for x in s.get(f"{base}/templates", timeout=10).json()] == ["月刊"]
    assert s.delete(f"{base}/templates/{t['id']}", timeout=10).status_code == 204
    assert not Template.objects.exists()


def test_create_multipart_with_files(client, tenant_a):
    response = client.post("/api/v1/templates", {"name": "n", "subjects": "s1|s2", "html": HTML,
                                                 "files": [SimpleUploadedFile("a.pdf", b"%PDF", "application/pdf")]},
                           **tenant_a.headers)
    assert response.status_code == 201, response.content
    t = Template.objects.get()
    assert t.subjects == ["s1", "s2"] and t.attachments.get().filename == "a.pdf"


def test_refusals_write_nothing(client, tenant_a, settings):
    for payload, code in (({"name": "n", "html": HTML}, "invalid"),
                          ({"name": "n", "subjects": [1], "html": HTML}, "invalid"),
                          ({"name": "n", "subjects": "a\nb", "html": HTML}, "invalid_subject"),
                          ({"name": "n", "subjects": "s", "html": HTML, "encoding": "7bit"}, "invalid")):
        response = client.post("/api/v1/templates", payload, content_type="application/json", **tenant_a.headers)
        assert response.status_code == 400 and response.json()["error"]["code"] == code, payload
    settings.HUB_TEMPLATE_MAX_BODY_BYTES = 10
    response = client.post("/api/v1/templates", {"name": "n", "subjects": "s", "html": HTML},
                           content_type="application/json", **tenant_a.headers)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert Template.objects.count() == 0 and TemplateAttachment.objects.count() == 0


def test_another_accounts_ids_are_not_found(client, tenant_a, tenant_b):
    t = services.create_template(tenant_a.account, name="n", subjects="s", html=HTML,
                                 files=[services.FileIn("a", "", b"a")])
    att = t.attachments.get().pk
    before = Template.objects.values().get(pk=t.pk)
    for method, url in (("get", f"/api/v1/templates/{t.pk}"), ("delete", f"/api/v1/templates/{t.pk}"),
                        ("get", f"/api/v1/templates/{t.pk}/check"),
                        ("delete", f"/api/v1/templates/{t.pk}/attachments"),
                        ("delete", f"/api/v1/templates/{t.pk}/attachments/{att}")):
        response = getattr(client, method)(url, **tenant_b.headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", url
    response = client.patch(f"/api/v1/templates/{t.pk}", {"name": "x"}, content_type="application/json",
                            **tenant_b.headers)
    assert response.status_code == 404
    assert Template.objects.values().get(pk=t.pk) == before and t.attachments.count() == 1
    assert client.get("/api/v1/templates", **tenant_b.headers).json() == []


def test_include_shared_lists_the_managers_shared_templates(client, make_tenant):
    manager = make_tenant("boss", is_manager=True)
    sub = make_tenant("sub")
    sub.account.parent = manager.account
    sub.account.save()
    services.create_template(manager.account, name="共享", subjects="s", html=HTML, shared=True)
    services.create_template(manager.account, name="私有", subjects="s", html=HTML)
    assert client.get("/api/v1/templates", **sub.headers).json() == []
    shared = client.get("/api/v1/templates?include_shared=true", **sub.headers).json()
    assert [t["name"] for t in shared] == ["共享"]


def test_schema_lists_the_template_paths(client):
    schema = client.get("/api/v1/schema/?format=json").json()
    for path in ("/api/v1/templates", "/api/v1/templates/{template_id}", "/api/v1/templates/{template_id}/check",
                 "/api/v1/templates/{template_id}/attachments",
                 "/api/v1/templates/{template_id}/attachments/{attachment_id}"):
        assert path in schema["paths"], path
