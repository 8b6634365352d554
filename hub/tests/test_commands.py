"""Provisioning commands, `hub_smtp` and `hub_app`: the exact JSON ops and tests rely on
(DESIGN.md), secrets that never show up in listings, and refusals that exit non-zero with a
clear message and write nothing. Most tests go through call_command; a few run the real
`manage.py` in a subprocess against the test database."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from conftest import subprocess_database_url
from hub.models import App, AppServer, SmtpServer

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def run_json(*args: str) -> dict:
    text = run(*args)
    lines = text.splitlines()
    assert len(lines) == 1, text
    return json.loads(lines[0])


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def add_server(name: str = "relay", *extra: str) -> int:
    result = run_json("hub_smtp", "add", "--name", name, "--host", "smtp.example.com", "--port", "587",
                      "--security", "starttls", "--username", "user@example.com", *extra)
    return result["id"]


def counts() -> tuple[int, int, int]:
    return SmtpServer.objects.count(), App.objects.count(), AppServer.objects.count()


def refused(*args: str) -> CommandError:
    """Run a command that must fail: non-zero exit code, no output, nothing written."""
    before = counts()
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command(*args, stdout=out)
    assert info.value.returncode != 0
    assert out.getvalue() == ""
    assert counts() == before
    return info.value


# --- hub_smtp -----------------------------------------------------------------------------

def test_smtp_add_prints_the_id(db):
    result = run_json("hub_smtp", "add", "--name", "主服务器", "--host", "smtp.example.com", "--port", "465",
                      "--security", "ssl", "--username", "user@example.com", "--password", "pw-1",
                      "--from-email", "noreply@example.com")

    server = SmtpServer.objects.get()
    assert result == {"id": server.id}
    assert (server.name, server.host, server.port, server.security) == ("主服务器", "smtp.example.com", 465, "ssl")
    assert (server.username, server.from_email, server.enabled) == ("user@example.com", "noreply@example.com", True)
    assert server.get_password() == "pw-1"
    assert server.password_encrypted != "pw-1"
    assert server.verify_tls is True  # only --no-verify-tls turns it off


def test_smtp_add_sender_defaults_to_username(db):
    server = SmtpServer.objects.get(pk=add_server())
    # No --from-email: the username is the sender.
    assert server.sender == "user@example.com"
    assert server.get_password() == ""


def test_smtp_add_security_defaults_to_none(db):
    result = run_json("hub_smtp", "add", "--name", "n", "--host", "h.example.com", "--port", "25",
                      "--from-email", "a@example.com")
    assert SmtpServer.objects.get(pk=result["id"]).security == "none"


def test_smtp_add_password_stdin(db, monkeypatch):
    # Keeps the password out of the process list and shell history.
    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin 密码\n"))
    server = SmtpServer.objects.get(pk=add_server("relay", "--password-stdin"))
    assert server.get_password() == "from-stdin 密码"


def test_smtp_add_no_verify_tls(db):
    server = SmtpServer.objects.get(pk=add_server("relay", "--no-verify-tls"))
    assert server.verify_tls is False


def test_smtp_list_is_json_lines_without_passwords(db):
    first = add_server("one", "--password", "first-Pa55word")
    second = add_server("two", "--password", "second-Pa55word")
    stored = list(SmtpServer.objects.values_list("password_encrypted", flat=True))

    text = run("hub_smtp", "list")

    rows = json_lines(text)
    assert [r["id"] for r in rows] == [first, second]
    assert rows[0]["name"] == "one" and rows[0]["host"] == "smtp.example.com" and rows[0]["port"] == 587
    assert rows[0]["security"] == "starttls" and rows[0]["enabled"] is True
    for row in rows:
        assert not any("password" in key for key in row)
    for secret in ["first-Pa55word", "second-Pa55word", *stored]:
        assert secret not in text


def test_smtp_list_empty(db):
    assert run("hub_smtp", "list") == ""


def test_smtp_disable_enable(db):
    server_id = add_server()

    assert run_json("hub_smtp", "disable", str(server_id)) == {"id": server_id, "enabled": False}
    assert SmtpServer.objects.get(pk=server_id).enabled is False
    assert run_json("hub_smtp", "enable", str(server_id)) == {"id": server_id, "enabled": True}
    assert SmtpServer.objects.get(pk=server_id).enabled is True


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
def test_smtp_add_bad_port(db, port):
    error = refused("hub_smtp", "add", "--name", "n", "--host", "h.example.com", "--port", port,
                    "--from-email", "a@example.com")
    assert "port" in str(error)


def test_smtp_add_port_not_a_number(db):
    error = refused("hub_smtp", "add", "--name", "n", "--host", "h.example.com", "--port", "smtp",
                    "--from-email", "a@example.com")
    assert "port" in str(error)


def test_smtp_add_bad_security(db):
    error = refused("hub_smtp", "add", "--name", "n", "--host", "h.example.com", "--port", "25",
                    "--security", "tls", "--from-email", "a@example.com")
    assert "security" in str(error) and "tls" in str(error)


def test_smtp_add_bad_from_email(db):
    error = refused("hub_smtp", "add", "--name", "n", "--host", "h.example.com", "--port", "25",
                    "--from-email", "not-an-address")
    assert "from_email" in str(error)


def test_smtp_add_without_any_sender(db):
    error = refused("hub_smtp", "add", "--name", "n", "--host", "h.example.com", "--port", "25")
    assert "--from-email" in str(error)


def test_smtp_add_both_password_options(db, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("x\n"))
    refused("hub_smtp", "add", "--name", "n", "--host", "h.example.com", "--port", "25",
            "--from-email", "a@example.com", "--password", "p", "--password-stdin")


def test_smtp_add_negative_limit(db):
    error = refused("hub_smtp", "add", "--name", "n", "--host", "h.example.com", "--port", "25",
                    "--from-email", "a@example.com", "--limit-per-hour", "-5")
    assert "--limit-per-hour" in str(error)


@pytest.mark.parametrize("action", ["disable", "enable"])
def test_smtp_unknown_server(db, action):
    error = refused("hub_smtp", action, "424242")
    assert "424242" in str(error)


# --- hub_app ----------------------------------------------------------------------------------

def test_app_add_prints_appid_and_secret(db):
    server_id = add_server()

    result = run_json("hub_app", "add", "--name", "官网", "--smtp", str(server_id),
                      "--from-name", "官网通知", "--type", "app")

    assert set(result) == {"appid", "appsecret"}
    app = App.objects.get()
    assert result["appid"] == app.id
    assert app.check_secret(result["appsecret"])
    assert (app.name, app.from_name, app.type, app.enabled) == ("官网", "官网通知", "app", True)
    assert [s.id for s in app.ordered_servers()] == [server_id]
    stored = App.objects.filter(pk=app.pk).values().get()
    assert not any(result["appsecret"] in str(value) for value in stored.values())


def test_first_appid_is_1000(db):
    server_id = add_server()
    appid = run_json("hub_app", "add", "--name", "first", "--smtp", str(server_id))["appid"]
    if connection.vendor == "sqlite":
        # The migration seeds the sequence at 999 and every test's rollback restores it.
        assert appid == 1000
    else:
        # InnoDB never hands back auto-increment values used by rolled-back transactions,
        # so another test may already have taken 1000; the sequence still starts there.
        assert appid >= 1000


def test_app_add_keeps_priority_order(db):
    first, second, third = add_server("a"), add_server("b"), add_server("c")

    # Deliberately not in id order: the order given is the failover order.
    result = run_json("hub_app", "add", "--name", "x", "--smtp", f"{third},{first},{second}")

    app = App.objects.get(pk=result["appid"])
    assert [s.id for s in app.ordered_servers()] == [third, first, second]


def test_app_add_two_servers(db):
    primary, backup = add_server("primary"), add_server("backup")
    result = run_json("hub_app", "add", "--name", "x", "--smtp", f"{primary},{backup}")
    assert [s.id for s in App.objects.get(pk=result["appid"]).ordered_servers()] == [primary, backup]


def test_app_list_is_json_lines_without_secrets(db):
    server_id = add_server()
    one = run_json("hub_app", "add", "--name", "one", "--smtp", str(server_id))
    two = run_json("hub_app", "add", "--name", "two", "--smtp", str(server_id), "--type", "server")
    digests = list(App.objects.values_list("secret_digest", flat=True))

    text = run("hub_app", "list")

    rows = json_lines(text)
    assert [r["appid"] for r in rows] == [one["appid"], two["appid"]]
    assert rows[0]["name"] == "one" and rows[0]["smtp"] == [server_id] and rows[0]["enabled"] is True
    assert rows[1]["type"] == "server"
    for row in rows:
        assert not any("secret" in key or "digest" in key for key in row)
    for secret in [one["appsecret"], two["appsecret"], *digests]:
        assert secret not in text


def test_app_disable_enable(db):
    server_id = add_server()
    appid = run_json("hub_app", "add", "--name", "x", "--smtp", str(server_id))["appid"]

    assert run_json("hub_app", "disable", str(appid)) == {"appid": appid, "enabled": False}
    assert App.objects.get(pk=appid).enabled is False
    assert run_json("hub_app", "enable", str(appid)) == {"appid": appid, "enabled": True}
    assert App.objects.get(pk=appid).enabled is True


def test_app_rotate_secret(db):
    server_id = add_server()
    old = run_json("hub_app", "add", "--name", "x", "--smtp", str(server_id))

    new = run_json("hub_app", "rotate-secret", str(old["appid"]))

    assert set(new) == {"appid", "appsecret"}
    assert new["appid"] == old["appid"] and new["appsecret"] != old["appsecret"]
    app = App.objects.get(pk=old["appid"])
    assert app.check_secret(new["appsecret"]) and not app.check_secret(old["appsecret"])


def test_app_add_unknown_server(db):
    server_id = add_server()
    error = refused("hub_app", "add", "--name", "x", "--smtp", f"{server_id},999999")
    assert "999999" in str(error)


def test_app_add_duplicate_server_ids(db):
    server_id = add_server()
    error = refused("hub_app", "add", "--name", "x", "--smtp", f"{server_id},{server_id}")
    assert "twice" in str(error)


@pytest.mark.parametrize("ids", ["abc", ",", "1;2"])
def test_app_add_bad_server_list(db, ids):
    add_server()
    refused("hub_app", "add", "--name", "x", "--smtp", ids)


def test_app_add_bad_type(db):
    server_id = add_server()
    error = refused("hub_app", "add", "--name", "x", "--smtp", str(server_id), "--type", "robot")
    assert "robot" in str(error)


def test_app_add_bad_allowed_ips(db):
    server_id = add_server()
    error = refused("hub_app", "add", "--name", "x", "--smtp", str(server_id), "--allowed-ips", "10.0.0.1,banana")
    assert "allowed_ips" in str(error)


@pytest.mark.parametrize("action", ["disable", "enable", "rotate-secret"])
def test_app_unknown_appid(db, action):
    server_id = add_server()
    appid = run_json("hub_app", "add", "--name", "x", "--smtp", str(server_id))["appid"]
    digest = App.objects.get(pk=appid).secret_digest

    error = refused("hub_app", action, "987654")

    assert "987654" in str(error)
    app = App.objects.get(pk=appid)
    assert (app.enabled, app.secret_digest) == (True, digest)


# --- the real command line ---------------------------------------------------------------------


def manage(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    # DEBUG=1 with no keys configured: the child derives the same development keys from
    # SECRET_KEY as this test process does (hub/crypto.py), and the hub.E00x checks, which
    # refuse those keys when DEBUG is off, stay quiet.
    env = {**os.environ, "DATABASE_URL": subprocess_database_url(), "DEBUG": "1"}
    return subprocess.run([sys.executable, "manage.py", *args], check=False, cwd=REPO_ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_command_line_add_server_and_app(transactional_db):
    smtp = manage("hub_smtp", "add", "--name", "relay", "--host", "127.0.0.1", "--port", "2525",
                  "--username", "relay@example.com", "--password-stdin", stdin="cli-Pa55\n")
    assert smtp.returncode == 0, smtp.stderr
    server_id = json.loads(smtp.stdout)["id"]

    app = manage("hub_app", "add", "--name", "cli", "--smtp", str(server_id))
    assert app.returncode == 0, app.stderr
    result = json.loads(app.stdout)
    assert set(result) == {"appid", "appsecret"}

    # What the child wrote, this process reads: same database, same keys.
    server = SmtpServer.objects.get(pk=server_id)
    assert server.get_password() == "cli-Pa55"
    assert App.objects.get(pk=result["appid"]).check_secret(result["appsecret"])
    assert "cli-Pa55" not in smtp.stdout + smtp.stderr


@pytest.mark.slow
def test_command_line_errors_exit_non_zero(transactional_db):
    before = counts()

    unknown = manage("hub_app", "add", "--name", "cli", "--smtp", "999999")
    assert unknown.returncode != 0
    assert "no SMTP server with id 999999" in unknown.stderr
    assert unknown.stdout == ""

    bad_port = manage("hub_smtp", "add", "--name", "n", "--host", "h.example.com", "--port", "70000",
                      "--from-email", "a@example.com")
    assert bad_port.returncode != 0
    assert "port" in bad_port.stderr
    assert bad_port.stdout == ""

    bad_security = manage("hub_smtp", "add", "--name", "n", "--host", "h.example.com", "--port", "25",
                          "--security", "tls", "--from-email", "a@example.com")
    assert bad_security.returncode != 0
    assert "tls" in bad_security.stderr

    assert counts() == before
