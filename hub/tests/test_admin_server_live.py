"""The SMTP server pages show live concurrency (connections open now across every worker,
against max_connections) and the rate over the last minute; max_connections is editable."""

from __future__ import annotations

from django.utils import timezone

from hub.delivery import slots
from hub.models import SmtpServer

from .test_admin_servers import server_form
from .test_admin_support import body, make_log


def test_list_and_change_page_show_open_connections_and_rate(su, make_server, make_app):
    server = make_server(max_connections=4)
    app = make_app(server).app
    for _i in range(3):
        make_log(app, server, status="sent", sent_at=timezone.now())
    slots.acquire(server, "cluster1-a")
    slots.acquire(server, "cluster2-b")
    page = body(su.get("/admin/hub/smtpserver/"))
    assert "2/4 connections" in page and "0.1 msgs/s (last minute)" in page  # 3 in the last 60 s
    page = body(su.get(f"/admin/hub/smtpserver/{server.pk}/change/"))
    assert "2/4 connections" in page


def test_max_connections_is_editable_and_defaults_to_5(su):
    su.post("/admin/hub/smtpserver/add/", server_form(name="a"))
    su.post("/admin/hub/smtpserver/add/", server_form(name="b", max_connections="12"))
    assert dict(SmtpServer.objects.values_list("name", "max_connections")) == {"a": 5, "b": 12}
    r = su.post("/admin/hub/smtpserver/add/", server_form(name="c", max_connections="0"))
    assert r.status_code == 200 and not SmtpServer.objects.filter(name="c").exists()  # at least 1
