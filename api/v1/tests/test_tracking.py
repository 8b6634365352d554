"""Native API: a campaign's tracking reports and the tracking domains; numbers checked
against the raw hits; another account's ids are not found; refusals write nothing."""

from __future__ import annotations

import csv
import io

import pytest

from hub.tracking.models import TrackDomain

from ...v28.tests.helpers import content
from ...v28.tests.test_track import _public_url, world  # noqa: F401  (fixtures)


def test_overview_links_recipients_clicks_export(client, world):  # noqa: F811
    tenant, tracked, a, b = world
    base = f"/api/v1/campaigns/{tracked.campaign.pk}/tracking"
    body = client.get(base, **tenant.headers).json()
    assert body["human"]["open_unique"] == 2 and body["human"]["open_total"] == 3
    assert body["human"]["click_unique"] == 2 and body["machine"]["open_unique"] == 1
    assert body["machine"]["reasons"] == {"gmail_proxy": 1} and body["sent"] == 4 and body["open_rate"] == 50.0
    assert [link["link"] for link in body["links"]][:2] == ["https://shop.example.com/a?x=1&y=2",
                                                            "https://shop.example.com/b"]
    links = client.get(f"{base}/links", **tenant.headers).json()
    assert [(lk["link_id"], lk["click_total"]) for lk in links][:2] == [(a, 1), (b, 1)]
    page = client.get(f"{base}/recipients?limit=2", **tenant.headers).json()
    assert len(page["results"]) == 2 and page["next_after"] == page["results"][-1]["email_id"]
    rest = client.get(f"{base}/recipients?limit=2&after={page['next_after']}", **tenant.headers).json()
    assert rest["next_after"] is None
    assert {r["email"] for r in page["results"] + rest["results"]} == {"r0@x.example", "r1@x.example", "r2@x.example"}
    clicked = client.get(f"{base}/recipients?clicked=true", **tenant.headers).json()["results"]
    assert {r["email"] for r in clicked} == {"r0@x.example", "r1@x.example"}
    clicks = client.get(f"{base}/clicks?link_id={b}", **tenant.headers).json()["results"]
    assert [(c["email"], c["click_total"]) for c in clicks] == [("r1@x.example", 1)]
    export = client.get(f"{base}/export", **tenant.headers)
    rows = list(csv.DictReader(io.StringIO(content(export).decode())))
    assert export["Content-Type"].startswith("text/csv") and len(rows) == 3


def test_another_accounts_campaign_is_not_found(client, world, tenant_b):  # noqa: F811
    _tenant, tracked, _a, _b = world
    base = f"/api/v1/campaigns/{tracked.campaign.pk}/tracking"
    for url in (base, f"{base}/links", f"{base}/recipients", f"{base}/clicks", f"{base}/export"):
        response = client.get(url, **tenant_b.headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", url
    response = client.get(f"{base}/clicks?link_id=999999", **_tenant.headers)
    assert response.status_code == 404
    response = client.get(f"{base}/recipients?limit=0", **_tenant.headers)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


@pytest.fixture
def cname(dns_server):
    dns_server.add("t.acme.example", "CNAME", "count.hub.test")
    return dns_server


def test_tracking_domains(client, tenant_a, tenant_b, cname):
    response = client.post("/api/v1/tracking-domains", {"domain": "T.acme.example", "is_default": True},
                           content_type="application/json", **tenant_a.headers)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["domain"], body["is_default"], body["is_cname"]) == ("t.acme.example", True, True)
    listed = client.get("/api/v1/tracking-domains", **tenant_a.headers).json()
    assert [d["domain"] for d in listed] == ["t.acme.example"]
    assert client.get("/api/v1/tracking-domains", **tenant_b.headers).json() == []
    url = f"/api/v1/tracking-domains/{body['id']}"
    assert client.get(url, **tenant_b.headers).status_code == 404
    assert client.delete(url, **tenant_b.headers).status_code == 404
    patched = client.patch(url, {"is_default": False}, content_type="application/json", **tenant_a.headers)
    assert patched.json()["is_default"] is False
    cname.set("t.acme.example", "CNAME", "elsewhere.example")
    assert client.post(f"{url}/check", **tenant_a.headers).json()["is_cname"] is False
    assert client.delete(url, **tenant_a.headers).status_code == 204 and TrackDomain.objects.count() == 0


def test_tracking_domain_refusals_write_nothing(client, tenant_a, cname):
    for data, code in [({"domain": "wrong.acme.example"}, "domain_cname_error"),
                       ({"domain": "not a domain"}, "domain_param_error"), ({}, "invalid")]:
        response = client.post("/api/v1/tracking-domains", data, content_type="application/json", **tenant_a.headers)
        assert response.status_code == 400 and response.json()["error"]["code"] == code, data
    assert TrackDomain.objects.count() == 0
