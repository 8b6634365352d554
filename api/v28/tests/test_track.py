"""V28 chapter 3 (track.php, trackexport.php, trackdomain.php), called as the reference's
samples do: curl -u style Basic auth, GET query strings (POST forms for 3.6-3.8). XML
parsed and checked, counts checked against the raw hits; another account's ids are
not_exist; refusals write nothing."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.utils import timezone

from hub.tracking import instrument, process
from hub.tracking.models import Hit, TrackDomain
from hub.tracking.tests.conftest import make_tracked
from hub.tracking.tests.test_classify import CHROME, GMAIL_PROXY

from .helpers import content, envelope, fields, parse

TRACK = "/mm-ms/apinew/track.php?do="
DOMAIN = "/apinew/trackdomain.php?do="


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.HUB_PUBLIC_URL = "https://mail.example.com"
    settings.HUB_TRACK_CNAME_TARGET = "count.hub.test"
    instrument.clear_caches()


@pytest.fixture
def world(tenant_a):
    """Campaign of tenant A: 4 sent rows; row 0 opens twice and clicks link A, row 1 clicks
    B without an open, row 2 is opened by Gmail's proxy only."""
    tracked = make_tracked(tenant_a.account, n=4, sent_ago=7200, sn="20180402101814-7020-53")
    table = instrument.table_for(tracked.campaign.pk, tracked.template)
    a, b = table.static["https://shop.example.com/a?x=1&amp;y=2"], table.static["https://shop.example.com/b"]
    t0 = timezone.now() - timedelta(minutes=30)
    c, rows = tracked.campaign.pk, tracked.rows

    def hit(i, kind, minutes, link=None, agent=CHROME, ip="114.114.114.114"):
        Hit.objects.create(kind=kind, campaign_id=c, log_id=rows[i].pk, link_id=link,
                           at=t0 + timedelta(minutes=minutes), ip=ip, user_agent=agent)

    hit(0, "o", 0)
    hit(0, "o", 3)
    hit(0, "c", 4, a)
    hit(1, "c", 5, b)
    hit(2, "o", 1, agent=GMAIL_PROXY, ip="66.249.84.1")
    process.process()
    return tenant_a, tracked, a, b


def get(client, tenant, url):
    return client.get(url, **tenant.headers)


def test_31_overview_by_id_and_by_ident(client, world):
    tenant, tracked, _a, _b = world
    for query in (f"overview&id={tracked.campaign.pk}", "overview&ident=20180402101814-7020-53",
                  "overview&id=999999&ident=20180402101814-7020-53"):  # ident wins
        root = parse(get(client, tenant, TRACK + query))
        assert root.tag == "track"
        values = dict(fields(root))
        assert [child.tag for child in root][:21] == [
            "track_id", "task_id", "task_sn", "send_id", "send_count", "error_send_count", "real_send_num",
            "real_send_count", "real_send_err", "open_unique", "open_total", "open_first", "open_last",
            "click_unique", "click_total", "click_first", "click_last", "send_ratio", "open_ratio", "click_ratio",
            "link_statistic"]
        assert values["task_sn"] == "20180402101814-7020-53" and values["send_id"] == str(tracked.campaign.pk)
        # Independently: people who opened = rows 0 and 1 (a click is an open); opens 2 + 1.
        assert (values["open_unique"], values["open_total"], values["click_unique"], values["click_total"]) == (
            "2", "3", "2", "2")
        assert (values["machine_open_unique"], values["machine_open_total"]) == ("1", "1")
        assert values["real_send_count"] == "4" and values["open_ratio"] == "50.00" and values["send_ratio"] == "100.00"
        links = root.find("link_statistic").findall("link")
        assert [(lk.findtext("link"), lk.findtext("click_total")) for lk in links] == [
            ("https://shop.example.com/a?x=1&y=2", "1"), ("https://shop.example.com/b", "1"),
            ("https://shop.example.com/u?e={{email}}", "0"), ("http://plain.example.org/", "0")]
        assert [c.tag for c in links[0]][:6] == ["link_id", "link", "click_unique", "click_total", "click_first",
                                                 "click_last"]


def test_32_open_detail(client, world):
    tenant, _tracked, _a, _b = world
    root = parse(get(client, tenant, TRACK + "open-detail&ident=20180402101814-7020-53"))
    assert root.tag == "data"
    users = {u.findtext("email"): u for u in root.findall("user")}
    assert set(users) == {"r0@x.example", "r1@x.example", "r2@x.example"}
    assert [c.tag for c in users["r0@x.example"]][:15] == [
        "email_id", "email", "browser", "os", "device", "addr_first", "ip_first", "ip_last", "addr_last",
        "open_total", "click_total", "open_first", "open_last", "click_first", "click_last"]
    r0 = dict(fields(users["r0@x.example"]))
    assert (r0["open_total"], r0["click_total"], r0["device"], r0["browser"], r0["ip_first"]) == (
        "2", "1", "pc", "Chrome", "114.114.114.114")
    assert r0["addr_first"].startswith("中国")
    r2 = dict(fields(users["r2@x.example"]))
    assert (r2["open_total"], r2["machine_open_total"], r2["machine_reason"]) == ("0", "1", "gmail_proxy")


def test_33_click_detail_and_35_link_stat(client, world):
    tenant, tracked, a, b = world
    root = parse(get(client, tenant, TRACK + f"click-detail&id={tracked.campaign.pk}"))
    clicks = [dict(fields(c)) for c in root.findall("click")]
    assert sorted((c["email"], c["link"], c["click_unique"], c["click_total"]) for c in clicks) == [
        ("r0@x.example", "https://shop.example.com/a?x=1&y=2", "1", "1"),
        ("r1@x.example", "https://shop.example.com/b", "1", "1")]
    root = parse(get(client, tenant, TRACK + f"click-detail&id={tracked.campaign.pk}&link_id={b}"))
    assert [c.findtext("email") for c in root] == ["r1@x.example"]
    root = parse(get(client, tenant, TRACK + f"link-stat&id={tracked.campaign.pk}&link_id={a}"))
    (link,) = root.findall("link")
    assert [c.tag for c in link][:6] == ["link_id", "link", "click_unique", "click_total", "click_first", "click_last"]
    assert (link.findtext("link_id"), link.findtext("click_unique")) == (str(a), "1")
    assert len(parse(get(client, tenant, TRACK + f"link-stat&id={tracked.campaign.pk}")).findall("link")) == 4


def test_34_trackexport_csv(client, world):
    tenant, tracked, _a, b = world
    track_id = parse(get(client, tenant, TRACK + f"overview&id={tracked.campaign.pk}")).findtext("track_id")
    response = get(client, tenant, f"/mm-ms/apinew/trackexport.php?track_id={track_id}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(content(response).decode())))
    assert {r["email"] for r in rows} == {"r0@x.example", "r1@x.example", "r2@x.example"}
    assert all(r["track_id"] == track_id for r in rows)
    clicked = list(csv.DictReader(io.StringIO(content(get(
        client, tenant, f"/apinew/trackexport.php?track_id={track_id}&is_click=1")).decode())))
    assert {r["email"] for r in clicked} == {"r0@x.example", "r1@x.example"}
    by_link = list(csv.DictReader(io.StringIO(content(get(
        client, tenant, f"/apinew/trackexport.php?track_id={track_id}&link_id={b}")).decode())))
    assert [r["email"] for r in by_link] == ["r1@x.example"]
    one = list(csv.DictReader(io.StringIO(content(get(
        client, tenant, f"/apinew/trackexport.php?track_id={track_id}&email_id={rows[0]['email_id']}")).decode())))
    assert [r["email_id"] for r in one] == [rows[0]["email_id"]]


def test_bad_parameters(client, world):
    tenant, tracked, _a, _b = world
    for url, ident, status in [
        (TRACK + "overview", "param_error", 400),
        (TRACK + "open-detail&id=abc", "param_error", 400),
        (TRACK + "overview&id=999999", "not_exist", 404),
        (TRACK + f"link-stat&id={tracked.campaign.pk}&link_id=999999", "not_exist", 404),
        ("/apinew/trackexport.php", "param_error", 400),
        ("/apinew/trackexport.php?track_id=1,x", "param_error", 400),
        ("/apinew/trackexport.php?track_id=999999", "not_exist", 404),
    ]:
        response = get(client, tenant, url)
        assert (response.status_code, envelope(response)[0]) == (status, ident), url


def test_another_accounts_tracking_is_not_exist_everywhere(client, world, tenant_b):
    _tenant, tracked, a, _b = world
    track_id = tracked.campaign.track.pk
    for url in [TRACK + f"overview&id={tracked.campaign.pk}", TRACK + "overview&ident=20180402101814-7020-53",
                TRACK + f"open-detail&id={tracked.campaign.pk}", TRACK + f"click-detail&id={tracked.campaign.pk}",
                TRACK + f"link-stat&id={tracked.campaign.pk}", f"/apinew/trackexport.php?track_id={track_id}"]:
        response = get(client, tenant_b, url)
        assert (response.status_code, envelope(response)[0]) == (404, "not_exist"), url
    # B's own campaign with A's link id: not_exist too.
    own = make_tracked(tenant_b.account, n=1, sn="b-1")
    response = get(client, tenant_b, TRACK + f"link-stat&id={own.campaign.pk}&link_id={a}")
    assert (response.status_code, envelope(response)[0]) == (404, "not_exist")


def test_no_credentials_is_401(client, world):
    response = client.get(TRACK + "overview&id=1")
    assert response.status_code == 401 and "Basic" in response["WWW-Authenticate"]


# --- 3.6-3.8 tracking domains -----------------------------------------------------------------

def test_36_37_38_as_the_samples(client, tenant_a, dns_server):
    dns_server.add("count.acme.example", "CNAME", "count.hub.test")
    dns_server.add("c1.acme.example", "CNAME", "count.hub.test")
    # 3.6 with no domain: the declaration alone.
    response = client.post(DOMAIN + "overview", {}, **tenant_a.headers)
    assert response.status_code == 200 and content(response) == b'<?xml version="1.0" encoding="UTF-8"?>\n'
    # 3.7 add as default.
    response = client.post(DOMAIN + "edit", {"domain": "count.acme.example", "isdefault": "1"}, **tenant_a.headers)
    assert envelope(response) == ("success", "count.acme.example") and b"<![CDATA[count.acme.example]]>" in content(
        response)
    # 3.6 with one domain: one <track_domain> root, the documented children.
    root = parse(client.post(DOMAIN + "overview", {}, **tenant_a.headers))
    d = TrackDomain.objects.get(domain="count.acme.example")
    assert root.tag == "track_domain" and fields(root) == [
        ("id", str(d.pk)), ("customer_id", str(tenant_a.account.pk)), ("domain", "count.acme.example"),
        ("isdefault", "1"), ("is_cname", "1")]
    # A second default takes the flag over; two domains are two top-level elements.
    client.post(DOMAIN + "edit", {"domain": "c1.acme.example", "isdefault": "1"}, **tenant_a.headers)
    body = content(client.post(DOMAIN + "overview", {}, **tenant_a.headers))
    items = ET.fromstring(b"<x>" + body.split(b"?>", 1)[1] + b"</x>")
    assert [(i.findtext("domain"), i.findtext("isdefault")) for i in items] == [
        ("count.acme.example", "0"), ("c1.acme.example", "1")]
    root = parse(client.post(DOMAIN + "overview&wrap=1", {"domains": "c1.acme.example"}, **tenant_a.headers))
    assert root.tag == "track_domain_list" and [i.findtext("domain") for i in root] == ["c1.acme.example"]
    # GET is accepted too ((e) #13).
    assert parse(get(client, tenant_a, DOMAIN + "overview&domains=count.acme.example")).tag == "track_domain"
    # 3.8 delete two: the sample's quirky array.
    response = client.post(DOMAIN + "del", {"domains": "c1.acme.example, count.acme.example"}, **tenant_a.headers)
    assert envelope(response) == ("success", "[\"'count.acme.example'\", \"'c1.acme.example'\"]")
    assert TrackDomain.objects.count() == 0


def test_37_cname_error_writes_nothing(client, tenant_a, dns_server):
    dns_server.add("count.5110ui.com", "CNAME", "count.bestedm.net")
    response = client.post(DOMAIN + "edit", {"domain": "count.5110ui.com"}, **tenant_a.headers)
    assert response.status_code == 400
    status, data = envelope(response)
    assert status == "domain_cname_error"
    assert data == "domain 参数 count.5110ui.com 的 cname 没有解析至 count.hub.test"  # the sample's text, our host
    response = client.post(DOMAIN + "edit", {"domain": "nothing.acme.example"}, **tenant_a.headers)
    assert envelope(response)[0] == "domain_cname_error"
    response = client.post(DOMAIN + "edit", {"domain": "not a domain"}, **tenant_a.headers)
    assert envelope(response)[0] == "domain_param_error"
    response = client.post(DOMAIN + "edit", {}, **tenant_a.headers)
    assert envelope(response)[0] == "param_error"
    assert TrackDomain.objects.count() == 0


def test_38_refusals_delete_nothing_and_all(client, tenant_a, tenant_b, dns_server):
    dns_server.add("t.acme.example", "CNAME", "count.hub.test")
    dns_server.add("u.acme.example", "CNAME", "count.hub.test")
    for name in ("t.acme.example", "u.acme.example"):
        client.post(DOMAIN + "edit", {"domain": name}, **tenant_a.headers)
    response = client.post(DOMAIN + "del", {"domains": "c1.520ui..com"}, **tenant_a.headers)
    assert (response.status_code, envelope(response)[0]) == (400, "domains_param_error")
    assert "c1.520ui..com" in envelope(response)[1]
    # Another account cannot see or delete A's domains.
    response = client.post(DOMAIN + "del", {"domains": "t.acme.example"}, **tenant_b.headers)
    assert (response.status_code, envelope(response)[0]) == (404, "not_exist")
    assert content(client.post(DOMAIN + "overview", {}, **tenant_b.headers)).endswith(b"?>\n")
    response = client.post(DOMAIN + "del", {"domains": "all"}, **tenant_b.headers)
    assert envelope(response) == ("success", "[]")
    assert TrackDomain.objects.count() == 2
    response = client.post(DOMAIN + "del", {"domains": "all"}, **tenant_a.headers)
    assert envelope(response)[0] == "success" and TrackDomain.objects.count() == 0


def test_manager_reads_a_subaccounts_tracking_with_customer_id(client, make_tenant):
    manager = make_tenant("mgr", is_manager=True)
    sub = make_tenant("sub", parent=manager.account)
    tracked = make_tracked(sub.account, n=1, sn="sub-1")
    url = TRACK + f"overview&id={tracked.campaign.pk}"
    response = get(client, manager, url)
    assert (response.status_code, envelope(response)[0]) == (404, "not_exist")  # not its own
    root = parse(get(client, manager, url + f"&customer_id={sub.account.pk}"))
    assert root.findtext("send_id") == str(tracked.campaign.pk)
    # A sub-account (not a manager) cannot act for another account (hub.tenancy's refusal).
    response = get(client, sub, url + f"&customer_id={manager.account.pk}")
    assert (response.status_code, envelope(response)[0]) == (403, "forbidden")
