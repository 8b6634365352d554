"""Fixtures of the domains app's tests: hub hosts for the checks, a fast password hasher,
and publishing a domain's records on the test DNS server (root conftest.dns_server)."""

from __future__ import annotations

import pytest

SPF_HOST = "spf.hub.test"
MX_HOST = "mx.hub.test"


@pytest.fixture(autouse=True)
def _domain_settings(settings):
    settings.HUB_SPF_INCLUDE = SPF_HOST
    settings.HUB_MX_HOST = MX_HOST
    settings.HUB_DKIM_SELECTOR = "hub"
    # Mailbox passwords: the real hasher costs ~1 s a hash on this machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from hub.domains import signer

    signer.clear_cache()
    yield
    signer.clear_cache()


@pytest.fixture
def publish(dns_server):
    """publish(domain, spf=True, mx=True, dkim=True): the records the hub asks for."""

    def run(domain, spf: bool = True, mx: bool = True, dkim: bool = True, states=("active",)) -> None:
        if spf:
            dns_server.add(domain.name, "TXT", f"v=spf1 ip4:192.0.2.1 include:{SPF_HOST} -all")
        if mx:
            dns_server.add(domain.name, "MX", f"10 {MX_HOST}")
        if dkim:
            for key in domain.keys.filter(state__in=states):
                dns_server.add(key.dns_name, "TXT", key.record)

    return run


@pytest.fixture
def account(db):
    from hub.models import Account

    return Account.objects.create(name="domains-alice")
