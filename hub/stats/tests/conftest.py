"""Fixtures of the statistics tests: a metered account with an app whose server is an
in-process sink that refuses what a test tells it to."""

from __future__ import annotations

import pytest

from hub.models import Account
from hub.tests.test_admin_support import staff_factory  # noqa: F401  (fixture)


@pytest.fixture
def metered(account) -> Account:
    account.quota_type = Account.QuotaType.TOTAL
    account.quota_total = account.quota_available = 10_000
    account.save()
    return account


@pytest.fixture
def sink(smtp_sink_factory):
    return smtp_sink_factory()


@pytest.fixture
def app(metered, sink, make_server, make_app):
    return make_app(make_server(sink), account=metered).app
