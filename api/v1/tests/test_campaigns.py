"""Native API: campaigns (create, list, get, patch, delete, pause, resume, cancel, progress);
refusals write nothing; another account's campaigns are not found; the schema lists them."""

from __future__ import annotations

import json

import pytest

from hub.campaigns.models import Campaign, State
from hub.contacts import services as contacts
from hub.mailtemplates import services as templates
from hub.mailtemplates.check import run_check
from hub.models import AppServer

HTML = '<p>你好 {{fullname|朋友}}</p>' + "<p>本月新品上架，欢迎选购。</p>" * 30 + '<a href="{{unsubscribe_url}}">退订</a>'


@pytest.fixture
def setup(tenant_a, make_server):
    server = make_server(from_email="news@example.com")
    AppServer.objects.create(app=tenant_a.app, server=server, priority=0)
    mail_list = contacts.create_list(tenant_a.account, "客户")
    contacts.add_contact(tenant_a.account, mail_list.pk, "a@x.example")
    t = templates.create_template(tenant_a.account, name="T1", subjects="主题", html=HTML)
    run_check(t.pk, t.revision)
    return tenant_a, mail_list, t


def api(client, tenant, method: str, path: str, body: dict | None = None):
    kwargs = {"content_type": "application/json", "data": json.dumps(body)} if body is not None else {}
    return getattr(client, method)(f"/api/v1/{path}", **kwargs, **tenant.headers)


def test_campaign_lifecycle(client, setup):
    tenant, mail_list, t = setup
    r = api(client, tenant, "post", "campaigns", {"template_ids": [t.pk], "list_ids": [mail_list.pk],
                                                  "send_account": "news@example.com", "state": -1})
    assert r.status_code == 201, r.content
    c = r.json()
    assert c["state"] == -1 and c["sn"] and c["send_qty_remark"] == 1
    assert [x["id"] for x in api(client, tenant, "get", "campaigns").json()] == [c["id"]]
    r = api(client, tenant, "patch", f"campaigns/{c['id']}", {"hour_speed": 1000, "send_fullname": "商城"})
    assert (r.json()["hour_speed"], r.json()["send_fullname"]) == (1000, "商城")
    r = api(client, tenant, "post", f"campaigns/{c['id']}/resume")  # "send now" from on hold
    assert r.json()["state"] == State.SENDING
    assert api(client, tenant, "post", f"campaigns/{c['id']}/pause").json()["state"] == State.PAUSED
    r = api(client, tenant, "post", f"campaigns/{c['id']}/pause")
    assert r.status_code == 200  # pausing a paused campaign changes nothing
    progress = api(client, tenant, "get", f"campaigns/{c['id']}/progress").json()
    assert progress["state"] == State.PAUSED and set(progress) >= {"sent", "failed", "waiting", "skipped"}
    assert api(client, tenant, "post", f"campaigns/{c['id']}/cancel").json()["state"] == State.CANCELLED
    r = api(client, tenant, "post", f"campaigns/{c['id']}/resume")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "illegal_state")
    assert api(client, tenant, "delete", f"campaigns/{c['id']}").status_code == 204
    assert not Campaign.objects.exists()


def test_refusals_write_nothing(client, setup):
    tenant, mail_list, t = setup
    for body, code in (({"template_ids": [t.pk], "list_ids": [mail_list.pk], "hour_speed": 50}, "invalid_speed"),
                       ({"template_ids": [t.pk], "list_ids": [mail_list.pk], "state": 3}, "invalid"),
                       ({"template_ids": [], "list_ids": [mail_list.pk]}, "invalid_template"),
                       ({"list_ids": [mail_list.pk]}, "invalid"),
                       ({"template_ids": [t.pk], "list_ids": [mail_list.pk], "send_qty_start": 5, "send_qty": 2},
                        "invalid_range")):
        r = api(client, tenant, "post", "campaigns", body)
        assert (r.status_code, r.json()["error"]["code"]) == (400, code), r.content
    assert not Campaign.objects.exists()


def test_other_accounts_campaign_is_not_found(client, setup, tenant_b):
    tenant, mail_list, t = setup
    c = api(client, tenant, "post", "campaigns", {"template_ids": [t.pk], "list_ids": [mail_list.pk],
                                                  "state": -1}).json()
    for method, path in (("get", ""), ("patch", ""), ("delete", ""), ("post", "/pause"), ("post", "/resume"),
                         ("post", "/cancel"), ("get", "/progress")):
        r = api(client, tenant_b, method, f"campaigns/{c['id']}{path}", {"name": "x"} if method == "patch" else None)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), (method, path)
    assert api(client, tenant_b, "get", "campaigns").json() == []
    assert Campaign.objects.get().state == State.ON_HOLD


def test_schema_lists_the_campaign_paths(client):
    schema = client.get("/api/v1/schema/?format=json").json()
    assert {"/api/v1/campaigns", "/api/v1/campaigns/{campaign_id}", "/api/v1/campaigns/{campaign_id}/pause",
            "/api/v1/campaigns/{campaign_id}/progress"} <= set(schema["paths"])
