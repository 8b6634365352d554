"""The dispatcher: routing under both roots, unknown actions, methods, credentials (Basic,
query-string behind a setting), body caps, disabled apps and accounts, refused IPs."""

from __future__ import annotations

import base64

import pytest

from .helpers import envelope


def basic(user: str, password: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("root", ["/apinew", "/mm-ms/apinew"])
def test_both_roots(client, tenant_a, root):
    response = client.get(f"{root}/account.php?do=customer-info", **tenant_a.headers)
    assert response.status_code == 200


@pytest.mark.parametrize("url", ["/apinew/account.php?do=nope", "/apinew/account.php", "/apinew/task.php?do=nope", "/apinew/nosuch.php",
                                 "/mm-ms/apinew/account.php?do="])
def test_unknown_action(client, tenant_a, url):
    response = client.get(url, **tenant_a.headers)
    assert response.status_code == 404
    assert response["Content-Type"] == "text/xml; charset=utf-8"
    assert envelope(response)[0] == "unknown_action"


def test_do_is_read_only_from_the_query_string(client, tenant_a):
    response = client.post("/apinew/account.php", {"do": "customer-info"}, **tenant_a.headers)
    assert response.status_code == 404 and envelope(response)[0] == "unknown_action"


def test_wrong_method(client, tenant_a):
    response = client.put("/apinew/account.php?do=customer-info", **tenant_a.headers)
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    assert envelope(response)[0] == "method_not_allowed"


@pytest.mark.parametrize("headers", [
    {},
    {"HTTP_AUTHORIZATION": "Bearer abc"},
    {"HTTP_AUTHORIZATION": "Basic !!!notbase64"},
    {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"no-colon").decode()},
    basic("1000", "wrong"),
    basic("", ""),
    basic("abc", "x"),
    basic("99999999", "secret"),
])
def test_credentials_refused(client, tenant_a, headers):
    response = client.get("/apinew/account.php?do=customer-info", **headers)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    status, message = envelope(response)
    assert status == "auth_error" and message


def test_wrong_secret_of_a_real_app(client, tenant_a):
    response = client.get("/apinew/account.php?do=customer-info", **basic(tenant_a.username, tenant_a.secret + "x"))
    assert response.status_code == 401


def test_disabled_app_account_and_ip(client, tenant_a):
    url = "/apinew/account.php?do=customer-info"
    tenant_a.app.allowed_ips = "10.9.9.9"
    tenant_a.app.save()
    response = client.get(url, **tenant_a.headers)
    assert response.status_code == 403 and envelope(response)[0] == "forbidden"
    tenant_a.app.allowed_ips = ""
    tenant_a.app.enabled = False
    tenant_a.app.save()
    response = client.get(url, **tenant_a.headers)
    assert response.status_code == 403 and envelope(response)[0] == "forbidden"
    tenant_a.app.enabled = True
    tenant_a.app.save()
    tenant_a.account.enabled = False
    tenant_a.account.save()
    response = client.get(url, **tenant_a.headers)
    assert response.status_code == 403 and envelope(response)[0] == "account_disabled"


def test_query_credentials_off_by_default(client, tenant_a):
    response = client.get(f"/apinew/account.php?do=customer-info&username={tenant_a.username}"
                          f"&password={tenant_a.secret}", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 401
    assert "query string" in envelope(response)[1]


def test_query_credentials_when_enabled(client, tenant_a, settings):
    settings.HUB_V28_QUERY_CREDENTIALS = True
    url = f"/apinew/account.php?do=customer-info&username={tenant_a.username}&password={tenant_a.secret}"
    assert client.get(url).status_code == 200
    wrong = f"/apinew/account.php?do=customer-info&username={tenant_a.username}&password=nope"
    assert client.get(wrong).status_code == 401


def test_body_cap(client, tenant_a, settings):
    settings.HUB_V28_MAX_REQUEST_BYTES = 100
    response = client.post("/apinew/account.php?do=customer-info", {"x": "y" * 200}, **tenant_a.headers)
    assert response.status_code == 413 and envelope(response)[0] == "too_large"


def test_overlong_parameter(client, tenant_a):
    response = client.get("/apinew/account.php?do=customer-info&customer_id=" + "1" * 3000, **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == "param_error"


def test_chinese_messages_by_default(client):
    response = client.get("/apinew/account.php?do=customer-info")
    assert envelope(response)[1] == "需要认证：请使用 HTTP Basic（AppID 和 AppSecret）"


def test_english_messages_on_request(client):
    response = client.get("/apinew/account.php?do=customer-info", HTTP_ACCEPT_LANGUAGE="en")
    assert envelope(response)[1] == "authentication required: HTTP Basic with your AppID and AppSecret"
