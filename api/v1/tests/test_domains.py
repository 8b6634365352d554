"""Native API: domains and mailboxes; refusals write nothing; another account's ids are
not found; a manager acts for its sub-account with customer_id."""

from __future__ import annotations

import pytest
import requests

from hub.domains import mailboxes, services
from hub.domains.models import DkimKey, Domain, Mailbox

SPF, MX = "spf.hub.test", "mx.hub.test"


@pytest.fixture(autouse=True)
def _hub_hosts(settings, dns_server):
    settings.HUB_SPF_INCLUDE, settings.HUB_MX_HOST = SPF, MX
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def publish(dns_server, name: str) -> None:
    dns_server.add(name, "TXT", f"v=spf1 include:{SPF} -all")
    dns_server.add(name, "MX", f"10 {MX}")


def counts() -> tuple[int, int, int]:
    return Domain.objects.count(), DkimKey.objects.count(), Mailbox.objects.count()


def test_domains_and_mailboxes_over_http(live_server, tenant_a, dns_server):
    publish(dns_server, "a.example")
    base = f"{live_server.url}/api/v1"
    s = requests.Session()
    s.auth = tenant_a.auth
    created = s.post(f"{base}/domains", json={"name": "A.example"}, timeout=10)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "a.example" and body["status"] == "verified" and body["spf_ok"] and body["mx_ok"]
    assert [r["type"] for r in body["records"]] == ["TXT", "MX", "TXT", "TXT"]
    assert "PRIVATE" not in created.text
    domain_id = body["id"]
    assert [d["name"] for d in s.get(f"{base}/domains", timeout=10).json()] == ["a.example"]
    checked = s.post(f"{base}/domains/{domain_id}/check", timeout=10).json()
    assert checked["checked_at"] and checked["status"] == "verified"
    rows = s.post(f"{base}/domains/check", json={"domains": ["a.example", "b.example"]}, timeout=10).json()
    assert [(r["val"], r["status"]) for r in rows] == [("a.example", 3), ("b.example", 0)]
    box = s.post(f"{base}/domains/{domain_id}/mailboxes", json={"name": "Sales", "password": "password1"},
                 timeout=10)
    assert box.status_code == 201 and box.json()["address"] == "sales@a.example"
    assert box.json()["app_id"] == tenant_a.app.pk and "password" not in box.text
    page = s.get(f"{base}/domains/{domain_id}/mailboxes?limit=1", timeout=10).json()
    assert page["total"] == 1 and page["results"][0]["name"] == "sales"
    box_id = box.json()["id"]
    patched = s.patch(f"{base}/mailboxes/{box_id}", json={"enabled": False, "password": "password2"}, timeout=10)
    assert patched.json()["enabled"] is False
    assert Mailbox.objects.get(pk=box_id).check_password("password2")
    assert s.delete(f"{base}/mailboxes/{box_id}", timeout=10).status_code == 204
    # Verified: its customer cannot delete it.
    refused = s.delete(f"{base}/domains/{domain_id}", timeout=10)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "domain_verified_cannot_delete"
    assert Domain.objects.filter(pk=domain_id).exists()


def test_refusals_write_nothing(client, tenant_a, tenant_b, dns_server):
    publish(dns_server, "a.example")
    publish(dns_server, "b.example")
    own = services.add_domain(tenant_a.account, "a.example")
    other = services.add_domain(tenant_b.account, "b.example")
    box = mailboxes.add_mailbox(tenant_b.account, "x@b.example", "password1")
    before = counts()
    h = tenant_a.headers
    cases = [
        (client.post("/api/v1/domains", {"name": "bad_name"}, content_type="application/json", **h), 400,
         "domain_format_error"),
        (client.post("/api/v1/domains", {"name": "B.example"}, content_type="application/json", **h), 409,
         "domain_exists"),
        (client.post("/api/v1/domains", {}, content_type="application/json", **h), 400, "invalid"),
        (client.get(f"/api/v1/domains/{other.pk}", **h), 404, "not_found"),
        (client.delete(f"/api/v1/domains/{other.pk}", **h), 404, "not_found"),
        (client.post(f"/api/v1/domains/{other.pk}/check", **h), 404, "not_found"),
        (client.get(f"/api/v1/domains/{other.pk}/mailboxes", **h), 404, "not_found"),
        (client.post(f"/api/v1/domains/{other.pk}/mailboxes", {"name": "y", "password": "password1"},
                     content_type="application/json", **h), 404, "not_found"),
        (client.get(f"/api/v1/mailboxes/{box.pk}", **h), 404, "not_found"),
        (client.patch(f"/api/v1/mailboxes/{box.pk}", {"enabled": False}, content_type="application/json", **h),
         404, "not_found"),
        (client.delete(f"/api/v1/mailboxes/{box.pk}", **h), 404, "not_found"),
        (client.post(f"/api/v1/domains/{own.pk}/mailboxes", {"name": "y", "password": "short"},
                     content_type="application/json", **h), 400, "password_error"),
        (client.post(f"/api/v1/domains/{own.pk}/mailboxes", {"name": "y", "password": "password1",
                                                              "app_id": tenant_b.app.pk},
                     content_type="application/json", **h), 404, "not_found"),
        (client.post("/api/v1/domains/check", {"domains": [f"d{i}.example" for i in range(21)]},
                     content_type="application/json", **h), 400, "domains_param_error"),
        (client.get(f"/api/v1/domains?customer_id={tenant_b.account.pk}", **h), 403, "forbidden"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.content
    assert counts() == before
    box.refresh_from_db()
    assert box.enabled


def test_manager_acts_for_subaccount(client, make_tenant, dns_server):
    manager = make_tenant("mgr", is_manager=True)
    sub = make_tenant("sub", parent=manager.account)
    stranger = make_tenant("stranger")
    publish(dns_server, "s.example")
    response = client.post(f"/api/v1/domains?customer_id={sub.account.pk}", {"name": "s.example"},
                           content_type="application/json", **manager.headers)
    assert response.status_code == 201 and response.json()["customer_id"] == sub.account.pk
    domain_id = response.json()["id"]
    before = counts()
    response = client.get(f"/api/v1/domains?customer_id={stranger.account.pk}", **manager.headers)
    assert response.status_code == 404 and counts() == before
    # The manager may delete the sub-account's verified domain (V28 7.5).
    response = client.delete(f"/api/v1/domains/{domain_id}?customer_id={sub.account.pk}", **manager.headers)
    assert response.status_code == 204 and not Domain.objects.filter(pk=domain_id).exists()
