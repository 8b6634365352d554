"""Direct delivery in the back office: the server form's kind (a direct server has no host or
login), and the Destinations page: presets, limits editable, the adaptive state now, recent
deferrals, ending a slow-down, who may do what."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from hub.delivery import destinations
from hub.models import Destination, SmtpServer

from .test_admin_servers import server_form
from .test_admin_support import body, messages_of


def test_a_direct_server_is_added_without_host_or_login(su):
    r = su.post("/admin/hub/smtpserver/add/", server_form(
        name="straight", kind="direct", host="", port="", username="", from_email="news@sender.test",
        helo_name="mta1.sender.test", source_address="127.0.0.1"), follow=True)
    assert r.status_code == 200, body(r)
    server = SmtpServer.objects.get()
    assert (server.kind, server.host, server.helo_name, server.source_address) == (
        "direct", "", "mta1.sender.test", "127.0.0.1")
    page = body(su.get(f"/admin/hub/smtpserver/{server.pk}/change/"))
    assert "Direct delivery" in page and 'name="host"' not in page and 'name="helo_name"' in page
    listing = body(su.get("/admin/hub/smtpserver/"))
    assert "each recipient domain&#x27;s MX hosts" in listing


def test_the_server_form_refuses_what_a_kind_lacks(su):
    r = su.post("/admin/hub/smtpserver/add/", server_form(kind="direct", from_email="", username=""))
    assert r.status_code == 200 and "A direct server needs a sender address." in body(r)
    r = su.post("/admin/hub/smtpserver/add/", server_form(kind="relay", host=""))
    assert r.status_code == 200 and "A relay server needs a host." in body(r)
    r = su.post("/admin/hub/smtpserver/add/", server_form(kind="direct", helo_name="bad name!", username=""))
    assert r.status_code == 200 and "Enter a host name" in body(r)
    assert not SmtpServer.objects.exists()


def test_a_relay_form_posted_without_a_kind_is_a_relay(su):
    r = su.post("/admin/hub/smtpserver/add/", server_form())
    assert r.status_code == 302
    assert SmtpServer.objects.get().kind == "relay"


def test_a_direct_server_has_no_connection_test(su, make_server):
    server = make_server(kind="direct", host="", from_email="news@sender.test")
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/test-connection/", follow=True)
    assert any("no single host to test" in m for m in messages_of(r))


def test_presets_are_loaded_from_their_page_and_listed(su):
    Destination.objects.filter(name__in=["qq", "gmail"]).delete()
    assert "Load the built-in presets" in body(su.get("/admin/hub/destination/load-presets/"))
    r = su.post("/admin/hub/destination/load-presets/", follow=True)
    assert r.status_code == 200
    assert {"qq", "netease", "gmail", "outlook", "yahoo"} <= set(Destination.objects.values_list("name", flat=True))
    listing = body(su.get("/admin/hub/destination/"))
    assert "gmail" in listing and "10 connections, 600/min" in listing


def test_the_page_shows_the_adaptive_state_and_recent_deferrals(su):
    dest = Destination.objects.create(name="busy.test", max_connections=6, rate_per_minute=120)
    destinations.deferred(dest.pk, "mx.busy.test", 421, "4.7.0 Too many connections <b>from you</b>")
    page = body(su.get(f"/admin/hub/destination/{dest.pk}/change/"))
    assert "0/3 connections" in page and "60/min" in page and "paused until" in page
    assert "mx.busy.test" in page and "&lt;b&gt;from you&lt;/b&gt;" in page  # the reply is escaped
    listing = body(su.get("/admin/hub/destination/"))
    assert "paused until" in listing


def test_limits_are_editable_and_a_slowdown_can_be_ended(su):
    dest = Destination.objects.create(name="busy.test", max_connections=6)
    destinations.deferred(dest.pk, "mx.busy.test", 421, "too many")
    r = su.post(f"/admin/hub/destination/{dest.pk}/change/", {
        "name": "busy.test", "domains": "busy.test other.test", "mx_patterns": ".busy.test",
        "max_connections": "9", "rate_per_minute": "30", "_save": "Save"})
    assert r.status_code == 302, body(r)
    dest.refresh_from_db()
    assert (dest.max_connections, dest.rate_per_minute, dest.adaptive_connections) == (9, 30, 3)
    assert destinations.find("other.test", "mx.elsewhere.test") == dest.pk  # matched at once
    su.post("/admin/hub/destination/", {"action": "end_slowdown", "_selected_action": [dest.pk]})
    dest.refresh_from_db()
    assert (dest.adaptive_connections, dest.adaptive_rate, dest.paused_until) == (None, None, None)


def test_reset_to_preset_puts_the_preset_values_back(su):
    [qq] = destinations.load_presets(["qq"])
    Destination.objects.filter(pk=qq.pk).update(max_connections=40,
                                                paused_until=timezone.now() + timedelta(minutes=5))
    su.post("/admin/hub/destination/", {"action": "reset_to_preset", "_selected_action": [qq.pk]})
    qq.refresh_from_db()
    assert qq.max_connections == 3 and qq.paused_until is not None  # the adaptive state stays


def test_viewers_see_but_cannot_change_or_load(staff_factory):
    dest = Destination.objects.create(name="busy.test")
    viewer = staff_factory("hub.view_destination")
    assert viewer.get("/admin/hub/destination/").status_code == 200
    assert viewer.post("/admin/hub/destination/load-presets/").status_code == 403
    viewer.post(f"/admin/hub/destination/{dest.pk}/change/", {"name": "x", "max_connections": "1",
                                                              "rate_per_minute": "0"})
    dest.refresh_from_db()
    assert dest.name == "busy.test"
    nobody = staff_factory()
    assert nobody.get("/admin/hub/destination/").status_code == 403


def test_the_pages_speak_chinese(superuser):
    from django.test import Client

    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(superuser)
    dest = Destination.objects.create(name="busy.test")
    destinations.deferred(dest.pk, "mx.busy.test", 421, "too many")
    page = body(client.get(f"/admin/hub/destination/{dest.pk}/change/"))
    assert "当前（自适应退避）" in page and "暂停至" in page and "最近的延迟" in page
    form = body(client.get("/admin/hub/smtpserver/add/"))
    assert "直发（投递到各收件域的 MX 主机）" in form and "HELO 名称" in form
