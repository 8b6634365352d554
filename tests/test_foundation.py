"""The project skeleton: settings from the environment, system checks, migrations, URLs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py in a clean environment: no .env file, only what the test gives."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DATABASE_URL", "REDIS_URL",
                                                                     "SECRET_KEY", "DEBUG", "DJANGO_"))}
    base.update({"HUB_ENV_FILE": "/dev/null", **env})
    return subprocess.run([sys.executable, "manage.py", *args], check=False, cwd=ROOT, env=base,
                          capture_output=True, text=True, timeout=120)


def settings_json(**env: str) -> dict:
    code = ("import django, json; django.setup(); from django.conf import settings as s; "
            "print(json.dumps({'db': s.DATABASES['default'], 'q': s.Q_CLUSTER, 'debug': s.DEBUG, "
            "'hosts': s.ALLOWED_HOSTS, 'tz': s.TIME_ZONE, 'lang': s.LANGUAGE_CODE}, default=str))")
    result = run_manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # shell may print a banner first


PROD_ENV = {
    "SECRET_KEY": "x" * 60,
    "HUB_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "HUB_SECRET_HASH_KEY": "y" * 40,
}


def test_default_database_is_sqlite_in_wal_mode(tmp_path):
    s = settings_json(HUB_VAR_DIR=str(tmp_path), DEBUG="1")
    assert s["db"]["ENGINE"] == "smtphub.sqlite3"  # Django's, with the write gate (smtphub/sqlite3)
    assert s["db"]["NAME"] == str(tmp_path / "smtphub.sqlite3")
    assert "journal_mode=WAL" in s["db"]["OPTIONS"]["init_command"]
    assert s["db"]["OPTIONS"]["timeout"] >= 5
    assert s["db"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "orm" in s["q"] and "redis" not in s["q"]


def test_mysql_url_gives_utf8mb4_and_redis_url_switches_broker(tmp_path):
    s = settings_json(HUB_VAR_DIR=str(tmp_path), DEBUG="1", DATABASE_URL="mysql://u:p@db.example:3307/hub",
                      REDIS_URL="redis://127.0.0.1:6379/2", TIME_ZONE="UTC", LANGUAGE_CODE="en",
                      ALLOWED_HOSTS="mail.example.com,hub.example.com")
    assert s["db"]["ENGINE"] == "django.db.backends.mysql"
    assert (s["db"]["HOST"], s["db"]["PORT"], s["db"]["NAME"]) == ("db.example", 3307, "hub")
    assert s["db"]["OPTIONS"]["charset"] == "utf8mb4"
    assert s["q"]["redis"] == "redis://127.0.0.1:6379/2" and "orm" not in s["q"]
    assert (s["tz"], s["lang"]) == ("UTC", "en")
    assert s["hosts"] == ["mail.example.com", "hub.example.com"]


def test_queue_settings_are_deliberate(settings):
    q = settings.Q_CLUSTER
    assert q["timeout"] < q["retry"]
    assert q["catch_up"] is False
    assert q["ack_failures"] is True
    assert q["max_attempts"] == 1


def test_check_is_clean_when_configured(tmp_path):
    result = run_manage("check", "--deploy", "--fail-level", "ERROR", HUB_VAR_DIR=str(tmp_path), **PROD_ENV)
    assert result.returncode == 0, result.stderr
    assert "hub.E" not in result.stderr


def test_check_reports_dev_key_without_debug(tmp_path):
    result = run_manage("check", HUB_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    for code in ("hub.E001", "hub.E002", "hub.E004"):
        assert code in result.stderr


def test_check_reports_malformed_fernet_key(tmp_path):
    result = run_manage("check", HUB_VAR_DIR=str(tmp_path), **{**PROD_ENV, "HUB_ENCRYPTION_KEYS": "not-a-key"})
    assert result.returncode != 0 and "hub.E003" in result.stderr


def test_debug_allows_dev_key(tmp_path):
    result = run_manage("check", HUB_VAR_DIR=str(tmp_path), DEBUG="1")
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_migrations_are_complete():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # SystemExit(1) if not


@pytest.mark.django_db
def test_sqlite_connection_uses_wal():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite-only pragma")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


@pytest.mark.django_db
def test_admin_login_page_answers(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert b'name="password"' in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api.php", "/api/v1/send"])
def test_api_urls_answer_with_api_body(client, url):
    response = client.get(url)
    assert response.status_code == 405
    assert response.json()["code"] == -1
    response = client.post(url, {})
    assert response.status_code == 400
    assert "code" in response.json() and "msg" in response.json()
