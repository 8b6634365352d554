"""Tracking-domain services (hub.tracking.trackdomains) against the test DNS server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from hub.tracking import trackdomains
from hub.tracking.models import TrackDomain
from hub.tracking.reports import NotFound, TrackingError


@pytest.fixture(autouse=True)
def _target(settings):
    settings.HUB_TRACK_CNAME_TARGET = "count.hub.test."


def test_cname_checks(dns_server):
    dns_server.add("ok.acme.example", "CNAME", "Count.Hub.Test.")
    dns_server.add("bad.acme.example", "CNAME", "count.bestedm.net")
    dns_server.add("a-record.acme.example", "A", "192.0.2.1")
    assert trackdomains.cname_ok("ok.acme.example") is True
    assert trackdomains.cname_ok("bad.acme.example") is False
    assert trackdomains.cname_ok("a-record.acme.example") is False
    assert trackdomains.cname_ok("missing.acme.example") is False


def test_one_default_per_account_and_tenancy(account, other, dns_server):
    for name in ("a.acme.example", "b.acme.example"):
        dns_server.add(name, "CNAME", "count.hub.test")
    a = trackdomains.edit_domain(account, "A.acme.example", True)
    b = trackdomains.edit_domain(account, "b.acme.example", True)
    a.refresh_from_db()
    assert (a.domain, a.is_default, b.is_default) == ("a.acme.example", False, True)
    other_default = trackdomains.edit_domain(other, "a.acme.example", True)  # the same host, another account
    b.refresh_from_db()
    assert b.is_default and other_default.is_default
    assert [d.domain for d in trackdomains.list_domains(other)] == ["a.acme.example"]
    with pytest.raises(NotFound):
        trackdomains.get_domain_by_id(other, b.pk)
    with pytest.raises(NotFound):
        trackdomains.delete_domains(other, "b.acme.example")
    assert TrackDomain.objects.count() == 3


def test_refusals_write_nothing(account, dns_server):
    with pytest.raises(TrackingError) as refused:
        trackdomains.edit_domain(account, "nocname.acme.example")
    assert refused.value.code == "domain_cname_error"
    with pytest.raises(TrackingError) as refused:
        trackdomains.delete_domains(account, "ok.example, not_a domain")
    assert refused.value.code == "domains_param_error"
    with pytest.raises(TrackingError):
        trackdomains.parse_names(",".join(f"d{i}.example" for i in range(101)))
    assert TrackDomain.objects.count() == 0


def test_dns_down_is_dns_unavailable(account, settings):
    settings.HUB_DNS_RESOLVER = "127.0.0.1:9"  # nothing answers there
    settings.HUB_DNS_TIMEOUT = 0.3
    with pytest.raises(TrackingError) as refused:
        trackdomains.edit_domain(account, "t.acme.example")
    assert (refused.value.code, refused.value.http_status) == ("dns_unavailable", 503)
    assert TrackDomain.objects.count() == 0


def test_scheduled_recheck_turns_a_moved_cname_off(account, dns_server, settings):
    dns_server.add("t.acme.example", "CNAME", "count.hub.test")
    domain = trackdomains.edit_domain(account, "t.acme.example")
    assert trackdomains.recheck_due() == 0  # just checked
    TrackDomain.objects.filter(pk=domain.pk).update(checked_at=timezone.now() - timedelta(days=1))
    dns_server.set("t.acme.example", "CNAME", "elsewhere.example")
    assert trackdomains.recheck_due() == 1
    domain.refresh_from_db()
    assert domain.is_cname is False
