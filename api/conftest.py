"""Fixtures for the EDM APIs' tests (api/v28/tests, api/v1/tests): tenants, each an
account with one app, and the Basic credentials of that app."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest


@dataclass
class Tenant:
    account: object
    app: object
    secret: str

    @property
    def username(self) -> str:
        return str(self.app.id)

    @property
    def auth(self) -> tuple[str, str]:
        return self.username, self.secret

    @property
    def header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()

    @property
    def headers(self) -> dict:
        """For django.test.Client: HTTP_AUTHORIZATION=..."""
        return {"HTTP_AUTHORIZATION": self.header}


@pytest.fixture
def make_tenant(db):
    from hub.models import Account, App

    def make(name: str, **fields) -> Tenant:
        account = Account.objects.create(name=name, **fields)
        app = App(name=f"{name} app", account=account)
        secret = app.rotate_secret()
        app.save()
        return Tenant(account, app, secret)

    return make


@pytest.fixture
def tenant_a(make_tenant) -> Tenant:
    return make_tenant("alice", company="Alice 有限公司", contact="爱丽丝", phone="010-1234", mobile="13800000000",
                       email="alice@example.com", im="qq:123", address="北京市 <朝阳区> & 东路")


@pytest.fixture
def tenant_b(make_tenant) -> Tenant:
    return make_tenant("bob", company="Bob Ltd")


@dataclass
class StatsWorld:
    """hub/stats/tests/world.py's outcomes for tenant A and tenant B (expected figures there)."""

    a: Tenant
    b: Tenant
    campaign: object
    other_campaign: object


@pytest.fixture
def world(tenant_a, tenant_b) -> StatsWorld:
    """The statistics API tests' data (api/v28/tests/test_statistic*.py, api/v1/tests/test_stats.py)."""
    from hub.stats.tests.world import build

    c, other = build(tenant_a.account, tenant_a.app, tenant_b.account, tenant_b.app)
    return StatsWorld(tenant_a, tenant_b, c, other)
