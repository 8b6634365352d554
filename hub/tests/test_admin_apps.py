"""Apps in the admin: the AppSecret shown once, rotation, ordered servers, the integration
snippet, the pipeline test email, and who may do what."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry

from hub.admin.apps import ROTATION_HAS_GRACE
from hub.models import App, AppServer, SendLog

from .test_admin_support import body, counts, fresh_cache, messages_of, staff_factory, su, superuser  # noqa: F401


def app_form(*server_ids: int, **overrides) -> dict:
    data = {
        "name": "Shop", "type": "site", "from_name": "", "enabled": "on", "allowed_ips": "",
        "rate_limit_per_minute": "0", "_save": "Save",
        "server_links-TOTAL_FORMS": str(len(server_ids)), "server_links-INITIAL_FORMS": "0",
        "server_links-MIN_NUM_FORMS": "0", "server_links-MAX_NUM_FORMS": "1000",
    }
    for i, sid in enumerate(server_ids):
        data[f"server_links-{i}-server"] = str(sid)
        data[f"server_links-{i}-priority"] = str(i)
    data.update(overrides)
    return data


def secret_in(response, next_url: str) -> str:
    """The secret from the body of the POST's own response: a 200 page that no cache keeps,
    never a redirect and never a message (the messages cookie is signed, not encrypted)."""
    assert response.status_code == 200, response.status_code
    assert "no-store" in response["Cache-Control"]
    assert not any("AppSecret" in m for m in messages_of(response))
    text = body(response)
    found = re.findall(r'id="hub-new-secret">([^<]+)<', text)
    assert len(found) == 1, text
    assert f'id="hub-secret-continue" class="text-primary-600 dark:text-primary-500 text-sm" href="{next_url}"' in text
    # Back and Reload lead to the app's page, not to a second POST of the form.
    assert f'history.replaceState(null, "", "{next_url}")' in text
    return found[0]


def assert_secret_not_kept(client, secret: str, page: str) -> None:
    # The next page shows no message with it: nothing was left in the messages storage.
    after = client.get(page)
    assert secret not in body(after)
    assert not any("AppSecret" in m for m in messages_of(after))


def api_send(client, appid, secret, **extra):
    return client.post("/api.php", {"action": "send", "appid": str(appid), "appsecret": secret,
                                    "to": "a@example.com", "subject": "s", "message": "<p>m</p>", **extra})


# --- create: the secret is shown once -------------------------------------------------------------

def test_create_shows_the_secret_once_and_it_works(su, client, make_server):
    primary, backup = make_server(name="primary"), make_server(name="backup")
    r = su.post("/admin/hub/app/add/", app_form(backup.pk, primary.pk, _continue="Save and continue"))
    app = App.objects.get()
    assert app.pk >= 1000
    secret = secret_in(r, f"/admin/hub/app/{app.pk}/change/")
    assert app.check_secret(secret) and secret not in app.secret_digest
    assert [s.name for s in app.ordered_servers()] == ["backup", "primary"]
    assert api_send(client, app.pk, secret).json()["code"] == 0
    # Shown once: the next view of the app does not have it.
    assert_secret_not_kept(su, secret, f"/admin/hub/app/{app.pk}/change/")
    assert LogEntry.objects.filter(action_flag=1, object_id=str(app.pk)).exists()


def test_create_with_save_shows_the_secret_then_leads_to_the_list(su, make_server):
    r = su.post("/admin/hub/app/add/", app_form(make_server().pk))
    app = App.objects.get()
    assert app.check_secret(secret_in(r, "/admin/hub/app/"))


def test_create_with_the_same_server_twice_is_refused(su, make_server):
    server = make_server()
    r = su.post("/admin/hub/app/add/", app_form(server.pk, server.pk))
    assert r.status_code == 200  # the form again, with the error
    assert App.objects.count() == 0 and AppServer.objects.count() == 0


def test_reorder_servers_in_the_inline(su, make_server, make_app):
    a, b = make_server(name="a"), make_server(name="b")
    app = make_app(a, b).app
    links = list(app.server_links.order_by("priority"))
    data = app_form(**{
        "server_links-TOTAL_FORMS": "2", "server_links-INITIAL_FORMS": "2",
        "server_links-0-id": str(links[0].pk), "server_links-0-app": str(app.pk),
        "server_links-0-server": str(a.pk), "server_links-0-priority": "1",
        "server_links-1-id": str(links[1].pk), "server_links-1-app": str(app.pk),
        "server_links-1-server": str(b.pk), "server_links-1-priority": "0",
    })
    r = su.post(f"/admin/hub/app/{app.pk}/change/", data)
    assert r.status_code == 302, body(r)
    assert [s.name for s in app.ordered_servers()] == ["b", "a"]


def test_change_page_has_the_integration_snippet(su, make_server, make_app):
    app = make_app(make_server()).app
    text = body(su.get(f"/admin/hub/app/{app.pk}/change/"))
    assert "curl -sS http://testserver/api.php" in text
    assert f"-d appid={app.pk}" in text
    assert f"'appid'     =&gt; '{app.pk}'," in text  # the PHP array (HTML-escaped)
    assert "YOUR_APPSECRET" in text
    assert app.secret_digest not in text


def test_app_list_shows_servers_primary_first(su, make_server, make_app):
    make_app(make_server(name="first-srv"), make_server(name="second-srv", enabled=False), name="A")
    make_app(name="lonely")
    text = body(su.get("/admin/hub/app/"))
    assert text.index("first-srv") < text.index("second-srv")
    assert "none: sends are refused" in text


def test_search_by_appid(su, make_app):
    app = make_app(name="findme").app
    make_app(name="other")
    r = su.get(f"/admin/hub/app/?q={app.pk}")
    assert list(r.context["cl"].result_list) == [app]


# --- rotate secret ---------------------------------------------------------------------------

def test_rotate_secret_issues_a_new_one_once(su, client, make_server, make_app):
    p = make_app(make_server())
    get = su.get(f"/admin/hub/app/{p.app.pk}/rotate-secret/")
    assert get.status_code == 200
    p.app.refresh_from_db()
    assert p.app.check_secret(p.secret)  # a GET changes nothing
    r = su.post(f"/admin/hub/app/{p.app.pk}/rotate-secret/", {"grace_seconds": "0"})
    new = secret_in(r, f"/admin/hub/app/{p.app.pk}/change/")
    assert_secret_not_kept(su, new, f"/admin/hub/app/{p.app.pk}/change/")
    p.app.refresh_from_db()
    assert p.app.check_secret(new) and not p.app.check_secret(p.secret)
    assert api_send(client, p.app.pk, p.secret).json()["error"] == "invalid_credentials"
    assert api_send(client, p.app.pk, new).json()["code"] == 0
    assert "Rotated the AppSecret" in LogEntry.objects.get().change_message
    assert new not in LogEntry.objects.get().change_message


@pytest.mark.skipif(not ROTATION_HAS_GRACE, reason="this App model has no rotation grace period")
def test_rotate_with_a_grace_period_keeps_the_old_secret_working(su, client, make_server, make_app):
    p = make_app(make_server())
    r = su.post(f"/admin/hub/app/{p.app.pk}/rotate-secret/", {"grace_seconds": "3600"})
    new = secret_in(r, f"/admin/hub/app/{p.app.pk}/change/")
    p.app.refresh_from_db()
    assert p.app.check_secret(new) and p.app.check_secret(p.secret)
    assert "the old one works until" in LogEntry.objects.get().change_message
    assert "previous secret still works until" in body(su.get(f"/admin/hub/app/{p.app.pk}/change/"))


@pytest.mark.parametrize("perms", [(), ("hub.view_app",)])
def test_rotate_is_refused_without_change_permission(staff_factory, make_app, perms):
    p = make_app()
    digest = p.app.secret_digest
    client = staff_factory(*perms)
    before = counts()
    for method in (client.get, client.post):
        assert method(f"/admin/hub/app/{p.app.pk}/rotate-secret/", {"grace_seconds": "0"}).status_code == 403
    p.app.refresh_from_db()
    assert p.app.secret_digest == digest and counts() == before


# --- send test email (the whole pipeline) ------------------------------------------------------

def test_send_test_email_goes_through_the_pipeline(su, smtp_sink, make_server, make_app, run_queue):
    p = make_app(make_server(smtp_sink))
    r = su.post(f"/admin/hub/app/{p.app.pk}/send-test/",
                {"to": "ops@example.com", "subject": "pipeline test", "message": "<p>hello</p>"})
    assert r.status_code == 200
    row = SendLog.objects.get()
    assert row.status == "sent" and row.app == p.app and row.subject == "pipeline test"
    assert row.source == "admin"
    assert f"Send log #{row.pk}: Sent" in body(r)
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0].message["X-SMTPHub-Log-ID"] == str(row.pk)
    # The queued task finds the row already delivered: nothing is sent twice.
    run_queue()
    assert len(smtp_sink.messages) == 1
    assert f"Test email #{row.pk}" in LogEntry.objects.get().change_message


def test_send_test_email_for_a_disabled_app_is_refused(su, smtp_sink, make_server, make_app):
    p = make_app(make_server(smtp_sink), enabled=False)
    before = counts()
    r = su.post(f"/admin/hub/app/{p.app.pk}/send-test/", {"to": "ops@example.com", "subject": "s", "message": "m"})
    assert any("This app is disabled" in m for m in messages_of(r))
    assert counts() == before and smtp_sink.messages == []


def test_send_test_email_without_servers_shows_the_refusal(su, make_app):
    p = make_app()
    before = counts()
    r = su.post(f"/admin/hub/app/{p.app.pk}/send-test/", {"to": "ops@example.com", "subject": "s", "message": "m"})
    assert any("no_smtp_server" in m for m in messages_of(r))
    assert counts() == before


@pytest.mark.parametrize("perms", [(), ("hub.view_app",)])
def test_send_test_email_is_refused_without_change_permission(staff_factory, smtp_sink, make_server, make_app, perms):
    p = make_app(make_server(smtp_sink))
    client = staff_factory(*perms)
    before = counts()
    r = client.post(f"/admin/hub/app/{p.app.pk}/send-test/", {"to": "ops@example.com", "subject": "s", "message": "m"})
    assert r.status_code == 403
    assert counts() == before and smtp_sink.messages == []


# --- enable / disable ----------------------------------------------------------------------------

def test_disable_selected_apps_stops_their_api(su, client, make_server, make_app):
    p = make_app(make_server())
    r = su.post("/admin/hub/app/", {"action": "disable_selected", "_selected_action": [p.app.pk]})
    assert r.status_code == 302
    p.app.refresh_from_db()
    assert not p.app.enabled
    assert api_send(client, p.app.pk, p.secret).json()["error"] == "app_disabled"
    assert LogEntry.objects.get().change_message == "Disabled"
    # Surfaced on the object: its History and its audit trail.
    assert "Disabled" in body(su.get(f"/admin/hub/app/{p.app.pk}/history/"))
    assert "Disabled" in body(su.get(f"/admin/hub/app/{p.app.pk}/change/"))


def test_disable_selected_is_refused_for_view_only_staff(staff_factory, make_app):
    p = make_app()
    before = counts()
    staff_factory("hub.view_app").post("/admin/hub/app/", {"action": "disable_selected",
                                                          "_selected_action": [p.app.pk]})
    p.app.refresh_from_db()
    assert p.app.enabled and counts() == before
