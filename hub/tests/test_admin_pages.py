"""Every admin page renders for a superuser and is refused to staff without permission;
list pages cost the same number of queries for 10 rows as for 100."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Success
from django_q.tasks import async_task

from hub.models import App, AppServer, SendLog, Site, SmtpServer

from .test_admin_support import body, make_log


@pytest.fixture
def world(make_server, make_app):
    server = make_server(name="relay", password="pw")
    app = make_app(server, name="shop").app
    log = make_log(app, server)
    Site.load()
    Schedule.objects.create(func="hub.tasks.deliver", name="admin-test", schedule_type=Schedule.MINUTES, minutes=1)
    async_task("hub.tasks.deliver", [log.pk])  # one queued task (ORM broker)
    return {"server": server, "app": app, "log": log}


def all_pages(w) -> list[str]:
    s, a, log = w["server"].pk, w["app"].pk, w["log"].pk
    pages = [
        "/admin/", "/admin/hub/", "/admin/password_change/",
        "/admin/hub/smtpserver/", "/admin/hub/smtpserver/add/", f"/admin/hub/smtpserver/{s}/change/",
        f"/admin/hub/smtpserver/{s}/history/", f"/admin/hub/smtpserver/{s}/delete/",
        f"/admin/hub/smtpserver/{s}/test-connection/", f"/admin/hub/smtpserver/{s}/send-test/",
        "/admin/hub/app/", "/admin/hub/app/add/", f"/admin/hub/app/{a}/change/", f"/admin/hub/app/{a}/history/",
        f"/admin/hub/app/{a}/rotate-secret/", f"/admin/hub/app/{a}/send-test/",
        "/admin/hub/sendlog/", f"/admin/hub/sendlog/{log}/change/", f"/admin/hub/sendlog/{log}/history/",
        f"/admin/hub/sendlog/{log}/resend/", f"/admin/hub/sendlog/{log}/preview/",
        "/admin/hub/site/1/change/", "/admin/hub/site/1/history/",
        "/admin/admin/logentry/", "/admin/auth/user/", "/admin/auth/group/", "/admin/auth/user/add/",
        "/admin/django_q/schedule/", "/admin/django_q/success/", "/admin/django_q/failure/",
        f"/admin/django_q/schedule/{Schedule.objects.get(name='admin-test').pk}/change/",
    ]
    if admin.site.is_registered(OrmQ):
        pages += ["/admin/django_q/ormq/", f"/admin/django_q/ormq/{OrmQ.objects.get().pk}/change/"]
    for model in admin.site._registry:
        if model._meta.app_label == "hub" and model._meta.model_name == "suppression":  # when present
            pages.append("/admin/hub/suppression/")
    return pages


def test_every_page_renders_for_a_superuser(su, world):
    for page in all_pages(world):
        r = su.get(page)
        assert r.status_code == 200, (page, r.status_code)
        if r["Content-Type"].startswith("text/html") and not page.endswith("/preview/"):
            assert "Server Error" not in body(r)


def test_site_settings_is_a_singleton_page(su, world):
    r = su.get("/admin/hub/site/")
    assert r.status_code == 302 and r["Location"] == "/admin/hub/site/1/change/"
    assert su.get("/admin/hub/site/add/").status_code == 403
    assert su.post("/admin/hub/site/1/delete/", {"post": "yes"}).status_code == 403
    data = {"title": "My Hub", "keywords": "mail", "description": "", "ip_blocklist": "10.0.0.0/8",
            "client_ip_mode": "remote_addr", "trusted_proxies": "127.0.0.1", "default_from_name": "Hub"}
    r = su.post("/admin/hub/site/1/change/", data)
    assert r.status_code == 302 and r["Location"] == "/admin/hub/site/1/change/"
    site = Site.load()
    assert (site.title, site.ip_blocklist, site.default_from_name) == ("My Hub", "10.0.0.0/8", "Hub")
    assert Site.objects.count() == 1
    bad = su.post("/admin/hub/site/1/change/", {**data, "ip_blocklist": "not-an-ip"})
    assert bad.status_code == 200 and "Not a list of IP addresses" in body(bad)
    assert Site.load().ip_blocklist == "10.0.0.0/8"


def test_staff_without_permissions_is_refused_everywhere(staff_factory, world):
    client = staff_factory()
    open_to_staff = {"/admin/", "/admin/password_change/"}
    for page in all_pages(world):
        r = client.get(page)
        if page in open_to_staff:
            assert r.status_code == 200, page
        else:
            assert r.status_code in (403, 404), (page, r.status_code)  # 404: app index without models
    # The dashboard shows no figures to them.
    assert "hub-dashboard" not in body(client.get("/admin/"))


def test_anonymous_is_sent_to_the_login(client, world):
    for page in all_pages(world):
        r = client.get(page)
        assert r.status_code == 302 and r["Location"].startswith("/admin/login/"), page


def test_sidebar_shows_only_what_the_user_may_see(staff_factory, su):
    nav = body(su.get("/admin/"))
    for link in ("/admin/hub/sendlog/", "/admin/hub/app/", "/admin/hub/smtpserver/", "/admin/django_q/failure/",
                 "/admin/admin/logentry/", "/admin/hub/site/"):
        assert f'href="{link}"' in nav, link
    limited = body(staff_factory("hub.view_app").get("/admin/"))
    assert 'href="/admin/hub/app/"' in limited and 'href="/admin/hub/sendlog/"' not in limited


# --- constant query counts ---------------------------------------------------------------------

def grow_sendlogs(n: int, app, server) -> None:
    SendLog.objects.bulk_create([SendLog(app=app, smtp_server=server, to=f"r{i}@example.com", subject=f"s{i}",
                                         html_body="m", status="sent", sent_at=timezone.now()) for i in range(n)])


def grow_servers(n: int, app, server) -> None:
    for i in range(n):
        s = SmtpServer(name=f"s{i}", host="127.0.0.1", port=25, security="none", limit_per_day=100)
        s.set_password("pw")
        s.save()


def grow_apps(n: int, app, server) -> None:
    for i in range(n):
        a = App(name=f"a{i}")
        a.rotate_secret()
        a.save()
        AppServer.objects.create(app=a, server=server)


def grow_logentries(n: int, app, server) -> None:
    user = User.objects.get(username="boss")
    LogEntry.objects.log_actions(user.pk, [app] * n, 2, "Changed", single_object=False)


def grow_users(n: int, app, server) -> None:
    User.objects.bulk_create([User(username=f"u{len(User.objects.all())}-{i}") for i in range(n)])


def grow_groups(n: int, app, server) -> None:
    start = Group.objects.count()
    Group.objects.bulk_create([Group(name=f"g{start + i}") for i in range(n)])


def grow_tasks(n: int, app, server) -> None:
    now = timezone.now()
    start = Success.objects.count()
    Success.objects.bulk_create([Success(id=f"t{start + i}", name=f"t{start + i}", func="hub.tasks.deliver",
                                         started=now, stopped=now, success=True) for i in range(n)])


LISTS = [
    ("/admin/hub/sendlog/", grow_sendlogs),
    ("/admin/hub/sendlog/?status__exact=sent", grow_sendlogs),
    ("/admin/hub/smtpserver/", grow_servers),
    ("/admin/hub/app/", grow_apps),
    ("/admin/admin/logentry/", grow_logentries),
    ("/admin/auth/user/", grow_users),
    ("/admin/auth/group/", grow_groups),
    ("/admin/django_q/success/", grow_tasks),
    ("/admin/", grow_sendlogs),  # the dashboard
]


@pytest.mark.parametrize("url,grow", LISTS, ids=[u for u, _g in LISTS])
def test_list_query_count_does_not_grow_with_rows(su, make_server, make_app, url, grow):
    server = make_server(limit_per_day=100)
    app = make_app(server).app

    def queries_for_page() -> int:
        su.get(url)  # warm per-process caches (content types, ...)
        with CaptureQueriesContext(connection) as ctx:
            r = su.get(url)
        assert r.status_code == 200
        return len(ctx.captured_queries)

    grow(10, app, server)
    with_10 = queries_for_page()
    grow(90, app, server)
    with_100 = queries_for_page()
    assert with_10 == with_100, (url, with_10, with_100)
