"""Fixtures and helpers for the admin tests (imported by the test_admin_* modules; this
module has no tests of its own)."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client
from django_q.models import OrmQ

from hub.models import SendLog


def english(client: Client) -> Client:
    # The hub's default language is Chinese; these tests read English text.
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture(autouse=True)
def fresh_cache():
    """The dashboard keeps its figures in Django's cache (per process) for a minute: each
    test starts and ends with none, so no test reads another's numbers. Autouse in the
    modules that import it."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def superuser(db) -> User:
    # No password: force_login needs none, and hashing one is the slowest part of a test.
    return User.objects.create_superuser("boss", "boss@example.com", None)


@pytest.fixture
def su(superuser) -> Client:
    client = english(Client())
    client.force_login(superuser)
    return client


@pytest.fixture
def staff_factory(db):
    """staff_factory("hub.view_sendlog", ...) -> a logged-in client of a staff user that has
    exactly these permissions (none at all when called without any)."""
    made = {"n": 0}

    def make(*perms: str) -> Client:
        made["n"] += 1
        user = User.objects.create_user(f"staff{made['n']}", f"staff{made['n']}@example.com", None, is_staff=True)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        client = english(Client())
        client.force_login(user)
        return client

    return make


def body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def make_log(app, server=None, **fields) -> SendLog:
    values = {"to": "rcpt@example.com", "subject": "Hello", "html_body": "<p>Hello</p>", "status": "sent",
              "from_email": "noreply@example.com"}
    values.update(fields)
    return SendLog.objects.create(app=app, smtp_server=server, **values)


def counts() -> tuple[int, int, int]:
    """(send logs, queued tasks, admin log entries): what a refused action must not change."""
    return SendLog.objects.count(), OrmQ.objects.count(), LogEntry.objects.count()
