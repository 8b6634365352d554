"""SMTP servers in the admin: the write-only password, "test connection" and "send test
email" against real in-process SMTP servers, and who may use them."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from conftest import free_port
from hub.models import SendLog, SmtpServer

from .test_admin_support import body, counts, messages_of

SECRET = "Sm7p-Pa55word-unique-42"


def server_form(**overrides) -> dict:
    data = {
        "name": "relay", "host": "127.0.0.1", "port": "2525", "security": "none", "verify_tls": "on",
        "username": "mailer", "password": "", "from_email": "noreply@example.com", "enabled": "on",
        "timeout": "5", "limit_per_minute": "0", "limit_per_hour": "0", "limit_per_day": "0", "_save": "Save",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def assert_no_password(text: str, server: SmtpServer) -> None:
    assert SECRET not in text
    assert server.password_encrypted and server.password_encrypted not in text
    # Not even a recognisable piece of the Fernet token.
    assert server.password_encrypted[:24] not in text


# --- the password is write-only ---------------------------------------------------------------

def test_add_server_stores_the_password_encrypted(su):
    r = su.post("/admin/hub/smtpserver/add/", server_form(password=SECRET), follow=True)
    assert r.status_code == 200, body(r)
    server = SmtpServer.objects.get()
    assert server.get_password() == SECRET
    assert SECRET not in server.password_encrypted
    assert_no_password(body(r), server)
    entry = LogEntry.objects.get()
    assert entry.is_addition() and SECRET not in entry.change_message


def same_place(server: SmtpServer) -> dict:
    """The form fields that say where the server connects, as they are stored."""
    return {"host": server.host, "port": str(server.port), "security": server.security,
            "verify_tls": "on" if server.verify_tls else None, "username": server.username}


def test_blank_password_keeps_the_stored_one(su, make_server):
    server = make_server(password=SECRET)
    before = server.password_encrypted
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/change/",
                server_form(name="renamed", password="", **same_place(server)))
    assert r.status_code == 302
    server.refresh_from_db()
    assert server.name == "renamed"
    assert server.password_encrypted == before and server.get_password() == SECRET


@pytest.mark.parametrize("moved", [{"host": "203.0.113.9"}, {"port": "2600"}, {"security": "none"},
                                   {"username": "someone-else"}])
def test_moving_the_server_requires_the_password_again(su, make_server, moved):
    # Otherwise whoever may edit servers could point one at their own host and collect the
    # stored password on its next login.
    server = make_server(password=SECRET, security="starttls")
    before = (server.host, server.port, server.security, server.username, server.password_encrypted)
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/change/", server_form(**{**same_place(server), **moved}))
    assert r.status_code == 200 and "type the password again" in r.content.decode()
    server.refresh_from_db()
    assert (server.host, server.port, server.security, server.username, server.password_encrypted) == before
    assert LogEntry.objects.count() == 0


def test_typing_a_new_password_replaces_it_and_the_history_names_only_the_field(su, make_server):
    server = make_server(password=SECRET)
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/change/", server_form(password="another-one"))
    assert r.status_code == 302
    server.refresh_from_db()
    assert server.get_password() == "another-one"
    entry = LogEntry.objects.get()
    assert "another-one" not in entry.change_message and "password" in entry.get_change_message().lower()


def test_clear_password_removes_it(su, make_server):
    server = make_server(password=SECRET)
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/change/", server_form(clear_password="on"))
    assert r.status_code == 302
    server.refresh_from_db()
    assert server.password_encrypted == "" and server.get_password() == ""


def test_new_password_and_clear_together_is_refused_and_not_echoed(su, make_server):
    server = make_server(password=SECRET)
    before = server.password_encrypted
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/change/",
                server_form(password="typed-but-refused", clear_password="on"))
    assert r.status_code == 200
    text = body(r)
    assert "Either type a new password or remove it" in text
    assert "typed-but-refused" not in text  # a password field is never rendered back
    server.refresh_from_db()
    assert server.password_encrypted == before


def test_the_password_never_appears_in_any_admin_page(su, make_server, make_app):
    server = make_server(password=SECRET, name="relay")
    app = make_app(server).app
    pages = [
        "/admin/", "/admin/hub/smtpserver/", f"/admin/hub/smtpserver/{server.pk}/change/",
        f"/admin/hub/smtpserver/{server.pk}/history/", f"/admin/hub/smtpserver/{server.pk}/delete/",
        f"/admin/hub/smtpserver/{server.pk}/test-connection/", f"/admin/hub/smtpserver/{server.pk}/send-test/",
        f"/admin/hub/app/{app.pk}/change/", "/admin/hub/app/add/", "/admin/admin/logentry/",
        "/admin/hub/smtpserver/?q=relay", "/admin/hub/sendlog/", "/admin/hub/sendlog/export.csv",
    ]
    # A change with a validation error re-renders the form: still nothing.
    error = su.post(f"/admin/hub/smtpserver/{server.pk}/change/", server_form(port="0"))
    assert error.status_code == 200
    assert_no_password(body(error), server)
    for page in pages:
        r = su.get(page)
        assert r.status_code == 200, page
        assert_no_password(body(r), server)
    # And the action that talks to the server (it fails: nothing listens on that port).
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/test-connection/")
    assert_no_password(body(r), server)


# --- test connection ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode,security", [("plain", "none"), ("starttls", "starttls"), ("ssl", "ssl")])
def test_test_connection_logs_in_and_shows_the_reply(su, smtp_sink_factory, make_server, mode, security):
    sink = smtp_sink_factory(mode, username="mailer", password="right")
    server = make_server(sink, security=security, verify_tls=False, password="right")
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/test-connection/")
    assert r.status_code == 200
    text = body(r)
    assert "The server answered" in text
    assert "accepted for mailer" in text
    assert "250" in text  # NOOP reply
    if security != "none":
        assert "TLSv1." in text
    assert any("Connection test passed" in m for m in messages_of(r))
    assert "Connection test passed" in LogEntry.objects.get().change_message
    assert sink.messages == []


def test_test_connection_shows_a_refused_login(su, smtp_sink_factory, make_server):
    sink = smtp_sink_factory("plain", username="mailer", password="right")
    server = make_server(sink, password="wrong")
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/test-connection/")
    text = body(r)
    assert "The test failed" in text and "authentication failed: 535" in text
    assert any("Connection test failed" in m for m in messages_of(r))


def test_test_connection_to_nothing_fails_within_the_timeout(su, make_server):
    server = make_server(port=free_port(), timeout=3)
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/test-connection/")
    assert r.status_code == 200
    assert "cannot connect to 127.0.0.1" in body(r)


def test_get_only_shows_the_page(su, smtp_sink, make_server):
    server = make_server(smtp_sink)
    r = su.get(f"/admin/hub/smtpserver/{server.pk}/test-connection/")
    assert r.status_code == 200 and "Run the test" in body(r) and "The server answered" not in body(r)
    assert LogEntry.objects.count() == 0


# --- send test email ---------------------------------------------------------------------------

def test_send_test_email_goes_straight_through_the_server(su, smtp_sink_factory, make_server):
    sink = smtp_sink_factory("plain", username="mailer", password="right")
    server = make_server(sink, password="right")
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/send-test/",
                {"to": "ops@example.com", "subject": "测试 subject", "message": "<p>hi</p>"})
    assert r.status_code == 200
    assert "Accepted by the server" in body(r) and "250 2.0.0 Ok: queued as TEST" in body(r)
    assert len(sink.messages) == 1
    msg = sink.messages[0].message
    assert sink.messages[0].rcpt_tos == ["ops@example.com"]
    assert msg["Subject"] == "测试 subject" and msg["X-SMTPHub-Test"] == f"server {server.pk}"
    assert msg["X-SMTPHub-Log-ID"] is None
    assert SendLog.objects.count() == 0  # a transport test, not a logged message
    assert "accepted by the server" in LogEntry.objects.get().change_message


def test_send_test_email_shows_a_refused_recipient(su, smtp_sink_factory, make_server):
    sink = smtp_sink_factory(refuse={"nobody@example.com": "550 5.1.1 User unknown"})
    server = make_server(sink)
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/send-test/",
                {"to": "nobody@example.com", "subject": "s", "message": "<p>x</p>"})
    text = body(r)
    assert "Not sent" in text and "550" in text and "User unknown" in text
    assert sink.messages == []


@pytest.mark.parametrize("to", ["not-an-address", "a@example.com, b@example.com", "x@example.com\r\nBcc: y@z.com"])
def test_send_test_email_refuses_a_bad_address(su, smtp_sink, make_server, to):
    server = make_server(smtp_sink)
    r = su.post(f"/admin/hub/smtpserver/{server.pk}/send-test/", {"to": to, "subject": "s", "message": "m"})
    assert r.status_code == 200
    assert r.context["form"].errors["to"]
    assert smtp_sink.messages == [] and LogEntry.objects.count() == 0


# --- who may ---------------------------------------------------------------------------------

@pytest.mark.parametrize("perms", [(), ("hub.view_smtpserver",)])
@pytest.mark.parametrize("action", ["test-connection", "send-test"])
def test_actions_are_refused_without_change_permission(staff_factory, smtp_sink, make_server, perms, action):
    server = make_server(smtp_sink)
    client = staff_factory(*perms)
    before = counts()
    for method in (client.get, client.post):
        r = method(f"/admin/hub/smtpserver/{server.pk}/{action}/",
                   {"to": "ops@example.com", "subject": "s", "message": "m"})
        assert r.status_code == 403
    assert counts() == before and smtp_sink.messages == []


def test_view_only_staff_does_not_see_the_action_buttons(staff_factory, make_server):
    server = make_server()
    r = staff_factory("hub.view_smtpserver").get(f"/admin/hub/smtpserver/{server.pk}/change/")
    assert r.status_code == 200
    assert "test-connection" not in body(r) and "send-test" not in body(r)


def test_disable_and_enable_selected_are_logged(su, make_server):
    a, b = make_server(name="a"), make_server(name="b")
    r = su.post("/admin/hub/smtpserver/", {"action": "disable_selected", "_selected_action": [a.pk, b.pk]})
    assert r.status_code == 302
    assert list(SmtpServer.objects.order_by("id").values_list("enabled", flat=True)) == [False, False]
    assert LogEntry.objects.filter(change_message="Disabled").count() == 2
    su.post("/admin/hub/smtpserver/", {"action": "enable_selected", "_selected_action": [a.pk]})
    a.refresh_from_db()
    assert a.enabled


def test_disable_selected_is_refused_for_view_only_staff(staff_factory, make_server):
    server = make_server()
    client = staff_factory("hub.view_smtpserver")
    before = counts()
    r = client.post("/admin/hub/smtpserver/", {"action": "disable_selected", "_selected_action": [server.pk]})
    # Not an action this user has: the admin answers "no action selected" and does nothing.
    assert r.status_code in (200, 302)
    server.refresh_from_db()
    assert server.enabled and counts() == before


def test_usage_against_limits_is_shown(su, make_server, make_app):
    from .test_admin_support import make_log

    server = make_server(limit_per_hour=10, limit_per_day=100)
    app = make_app(server).app
    from django.utils import timezone

    for _i in range(3):
        make_log(app, server, status="sent", sent_at=timezone.now())
    make_log(app, server, status="failed")
    r = su.get("/admin/hub/smtpserver/")
    assert "3/10" in body(r) and "3/100" in body(r)
    r = su.get(f"/admin/hub/smtpserver/{server.pk}/change/")
    assert "3/10" in body(r)


def test_the_admin_test_waits_at_most_the_admin_cap(su, make_server, settings):
    settings.HUB_ADMIN_TEST_TIMEOUT = 7
    slow = make_server(timeout=300)
    quick = make_server(timeout=3)
    # The page shows the server's own setting and the cap that applies to the test.
    capped = body(su.get(f"/admin/hub/smtpserver/{slow.pk}/test-connection/"))
    assert "Timeout: 300 s per step" in capped and "this test waits at most 7 s per step" in capped
    assert "Timeout: 3 s per step." in body(su.get(f"/admin/hub/smtpserver/{quick.pk}/test-connection/"))
    slow.refresh_from_db()
    assert slow.timeout == 300  # the cap is for the admin's request only


def test_change_page_reads_usage_and_audit_once(su, make_server, make_app):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from .test_admin_support import make_log

    server = make_server(limit_per_minute=50)
    app = make_app(server).app
    for _i in range(2):
        make_log(app, server, status="sent", sent_at=timezone.now())
    su.post("/admin/hub/smtpserver/", {"action": "disable_selected", "_selected_action": [server.pk]})
    with CaptureQueriesContext(connection) as queries:
        r = su.get(f"/admin/hub/smtpserver/{server.pk}/change/")
    assert r.status_code == 200 and "2/50" in body(r)
    sql = [q["sql"].replace("`", '"') for q in queries]
    # unfold reads each read-only value several times; each is computed once per page.
    assert sum('FROM "hub_sendlog"' in s and "GROUP BY" in s for s in sql) == 1, "\n".join(sql)
    assert sum('FROM "django_admin_log"' in s for s in sql) == 1, "\n".join(sql)
