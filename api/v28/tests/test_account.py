"""V28 chapter 1: account.php?do=customer-info (1.1) and do=service-info (1.2)."""

from __future__ import annotations

import datetime

import pytest
import requests

from hub.models import Account

from .helpers import envelope, fields, parse

CUSTOMER_FIELDS = ["id", "username", "company", "contact", "phone", "mobile", "email", "im", "address"]
SERVICE_FIELDS = ["id", "service_status", "service_type", "send_type", "beginning_date", "expiration_date",
                  "qty_available", "qty_buytotal"]


def test_customer_info_over_http_like_curl_u(live_server, tenant_a):
    # curl -u appid:secret https://host/mm-ms/apinew/account.php?do=customer-info
    url = f"{live_server.url}/mm-ms/apinew/account.php?do=customer-info"
    response = requests.get(url, auth=tenant_a.auth, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    root = parse(response.content)
    assert root.tag == "customer"
    assert fields(root) == [
        ("id", str(tenant_a.account.pk)), ("username", "alice"), ("company", "Alice 有限公司"),
        ("contact", "爱丽丝"), ("phone", "010-1234"), ("mobile", "13800000000"), ("email", "alice@example.com"),
        ("im", "qq:123"), ("address", "北京市 <朝阳区> & 东路"),
    ]


def test_service_info_over_http_with_userinfo_url(live_server, make_tenant):
    tenant = make_tenant("svc", quota_type="all", quota_total=5000, quota_available=1234, send_type="local",
                         service_start=datetime.date(2024, 1, 1), service_end=datetime.date(2030, 12, 31))
    # The URL carries the credentials, as urllib/curl accept them: http://user:pass@host/...
    host = live_server.url.removeprefix("http://")
    url = f"http://{tenant.username}:{tenant.secret}@{host}/apinew/account.php?do=service-info"
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    root = parse(response.content)
    assert root.tag == "service"
    assert fields(root) == [
        ("id", str(tenant.account.pk)), ("service_status", "enabled"), ("service_type", "all"),
        ("send_type", "local"), ("beginning_date", "2024-01-01"), ("expiration_date", "2030-12-31"),
        ("qty_available", "1234"), ("qty_buytotal", "5000"),
    ]


def test_service_info_unlimited_and_daily(client, make_tenant):
    unlimited = make_tenant("unl")
    root = parse(client.get("/apinew/account.php?do=service-info", **unlimited.headers).content)
    assert [c.tag for c in root] == SERVICE_FIELDS
    assert root.findtext("service_type") == "unlimited"
    assert root.findtext("qty_available") == "-1" and root.findtext("qty_buytotal") == "-1"
    assert root.findtext("beginning_date") == "" and root.findtext("expiration_date") == ""
    # A daily quota last used on an earlier day shows the whole day's allowance.
    daily = make_tenant("day", quota_type="day", quota_total=300, quota_available=7,
                        quota_day=datetime.date(2020, 1, 1), service_status="disabled")
    root = parse(client.get("/apinew/account.php?do=service-info", **daily.headers).content)
    assert root.findtext("service_type") == "day" and root.findtext("qty_available") == "300"
    assert root.findtext("service_status") == "disabled"


def test_post_is_accepted_too(client, tenant_a):
    response = client.post("/apinew/account.php?do=customer-info", {}, **tenant_a.headers)
    assert response.status_code == 200 and parse(response.content).tag == "customer"


def test_bad_credentials(client, tenant_a):
    response = client.get("/apinew/account.php?do=customer-info",
                          HTTP_AUTHORIZATION="Basic " + "eDp5")  # x:y
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Basic realm="SMTP Hub V28 API"')
    assert envelope(response)[0] == "auth_error"


def test_manager_reads_its_sub_account_and_not_another(client, make_tenant):
    manager = make_tenant("mgr", is_manager=True)
    child = Account.objects.create(name="kid", parent=manager.account, company="Kid Co")
    stranger = make_tenant("stranger")
    url = "/apinew/account.php?do=customer-info&user_type=manager&customer_id="
    response = client.get(url + str(child.pk), **manager.headers)
    assert response.status_code == 200
    assert parse(response.content).findtext("username") == "kid"
    response = client.get(url + str(stranger.account.pk), **manager.headers)
    assert response.status_code == 404
    assert envelope(response)[0] == "not_exist"
    # A customer cannot read another customer, with or without user_type.
    response = client.get("/apinew/account.php?do=customer-info&customer_id=" + str(child.pk), **stranger.headers)
    assert response.status_code == 403 and envelope(response)[0] == "forbidden"


@pytest.mark.parametrize("do", ["customer-info", "service-info"])
def test_cross_account(client, tenant_a, tenant_b, do):
    root = parse(client.get(f"/apinew/account.php?do={do}", **tenant_b.headers).content)
    assert root.findtext("id") == str(tenant_b.account.pk)
    assert "alice" not in client.get(f"/apinew/account.php?do={do}", **tenant_b.headers).content.decode()
