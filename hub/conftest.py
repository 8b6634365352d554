"""Fixtures every app under hub/ shares: the admin's logged-in clients, and two customer
accounts for tenancy tests (`account`, and `other`, whose ids must be "not found" to it)."""

from __future__ import annotations

import pytest

from hub.models import Account
from hub.tests.test_admin_support import su, superuser  # noqa: F401  (admin client fixtures)


@pytest.fixture
def account(db) -> Account:
    return Account.objects.create(name="acme")


@pytest.fixture
def other(db) -> Account:
    return Account.objects.create(name="intruder")
