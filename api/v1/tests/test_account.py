"""Native API: /api/v1/account and /api/v1/account/service, authentication and the error shape."""

from __future__ import annotations

import base64

import pytest
import requests

from hub.models import Account


def test_account_over_http_with_basic_auth(live_server, tenant_a):
    response = requests.get(f"{live_server.url}/api/v1/account", auth=tenant_a.auth, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == tenant_a.account.pk and body["username"] == "alice"
    assert body["company"] == "Alice 有限公司" and body["is_manager"] is False
    assert body["service"]["service_type"] == "unlimited" and body["service"]["qty_available"] == -1


def test_service(client, make_tenant):
    tenant = make_tenant("svc", quota_type="all", quota_total=10, quota_available=4)
    body = client.get("/api/v1/account/service", **tenant.headers).json()
    assert body == {"id": tenant.account.pk, "service_status": "enabled", "service_type": "all",
                    "send_type": "remote", "beginning_date": "", "expiration_date": "",
                    "qty_available": 4, "qty_buytotal": 10}


def test_send_api_style_body_credentials(client, tenant_a):
    # GET has no body: POST is not allowed on /account, so the credentials are accepted but
    # the method refused; the point is that authentication came first and succeeded.
    response = client.post("/api/v1/account", {"appid": tenant_a.username, "appsecret": tenant_a.secret})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    response = client.post("/api/v1/account", {"appid": tenant_a.username, "appsecret": "wrong"})
    assert response.status_code == 401


@pytest.mark.parametrize("headers", [
    {},
    {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"1:nope").decode()},
    {"HTTP_AUTHORIZATION": "Token abc"},
    {"HTTP_AUTHORIZATION": "Basic ***"},
])
def test_refused_credentials(client, tenant_a, headers):
    response = client.get("/api/v1/account", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Basic realm="SMTP Hub API"')
    error = response.json()["error"]
    assert error["code"] in ("not_authenticated", "auth_error") and error["message"]


def test_manager_and_sub_account(client, make_tenant):
    manager = make_tenant("mgr", is_manager=True)
    child = Account.objects.create(name="kid", parent=manager.account)
    stranger = make_tenant("stranger")
    assert client.get(f"/api/v1/account?customer_id={child.pk}", **manager.headers).json()["username"] == "kid"
    response = client.get(f"/api/v1/account?customer_id={stranger.account.pk}", **manager.headers)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = client.get(f"/api/v1/account?customer_id={child.pk}", **stranger.headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


def test_disabled_account(client, tenant_a):
    tenant_a.account.enabled = False
    tenant_a.account.save()
    response = client.get("/api/v1/account", **tenant_a.headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "account_disabled"


def test_schema_and_docs_are_served(client):
    schema = client.get("/api/v1/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/account" in paths and "/api/v1/send" not in paths
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    # Served offline: the Swagger UI comes from our static files (sidecar), not a CDN.
    assert b"drf_spectacular_sidecar" in docs.content and b"cdn.jsdelivr" not in docs.content


def test_schema_says_how_to_authenticate(client):
    """Swagger UI's "Authorize" works: every operation asks for HTTP Basic (AppID, AppSecret)."""
    schema = client.get("/api/v1/schema/?format=json").json()
    assert schema["components"]["securitySchemes"]["appBasic"] == {
        "type": "http", "scheme": "basic",
        "description": schema["components"]["securitySchemes"]["appBasic"]["description"]}
    assert "AppSecret" in schema["components"]["securitySchemes"]["appBasic"]["description"]
    operations = [op for item in schema["paths"].values() for op in item.values()]
    assert operations and all({"appBasic": []} in op["security"] for op in operations)
    assert not any(p.startswith("/api/v1/send") for p in schema["paths"])
