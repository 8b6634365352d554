"""DNS verification against the test DNS server: SPF, MX, DKIM, statuses, re-checks."""

from __future__ import annotations

import pytest
from django.utils import timezone

from hub.domains import dns, services
from hub.domains.models import DkimKey, Domain


def test_add_makes_keys_and_verifies_when_records_are_right(account, dns_server):
    dns_server.add("example.org", "TXT", "v=spf1 include:spf.hub.test ~all")
    dns_server.add("example.org", "MX", "10 MX.HUB.TEST.")
    domain = services.add_domain(account, "Example.ORG.")
    assert domain.name == "example.org"
    assert domain.status == Domain.Status.VERIFIED and domain.spf_ok and domain.mx_ok
    assert domain.verified_at is not None and domain.checked_at is not None
    assert not domain.dkim_ok  # DKIM not published: reported, not required
    algorithms = sorted(domain.keys.values_list("algorithm", "selector", "state"))
    assert algorithms == [("ed25519", "hub-ed25519", "active"), ("rsa-2048", "hub", "active")]


def test_not_verified_without_spf_include_or_mx(account, dns_server, publish):
    dns_server.add("example.org", "TXT", "v=spf1 include:other.test -all")
    dns_server.add("example.org", "MX", "10 mx.hub.test")
    domain = services.add_domain(account, "example.org")
    assert domain.status == Domain.Status.PENDING and not domain.spf_ok and domain.mx_ok
    assert "SPF" in domain.check_detail
    dns_server.set("example.org", "TXT", "v=spf1 include:spf.hub.test -all")
    dns_server.set("example.org", "MX", "10 mx.other.test")
    domain = services.run_check(domain)
    assert domain.spf_ok and not domain.mx_ok and domain.status == Domain.Status.PENDING
    assert "MX" in domain.check_detail


def test_two_spf_records_are_an_error(account, dns_server):
    dns_server.add("example.org", "TXT", "v=spf1 include:spf.hub.test -all")
    dns_server.add("example.org", "TXT", "v=spf1 -all")
    dns_server.add("example.org", "MX", "10 mx.hub.test")
    assert services.add_domain(account, "example.org").spf_ok is False


def test_dkim_record_must_carry_our_key(account, dns_server, publish):
    domain = services.add_domain(account, "example.org")
    publish(domain)
    domain = services.run_check(domain)
    assert domain.dkim_ok and domain.status == Domain.Status.VERIFIED
    rsa = domain.keys.get(algorithm=DkimKey.Algorithm.RSA)
    dns_server.set(rsa.dns_name, "TXT", "v=DKIM1; k=rsa; p=" + "B" * 100)
    assert services.run_check(domain).dkim_ok is False


def test_broken_records_flag_the_domain_and_fixing_clears_it(account, dns_server, publish, caplog):
    domain = services.add_domain(account, "example.org")
    publish(domain)
    domain = services.run_check(domain)
    assert domain.status == Domain.Status.VERIFIED
    dns_server.set("example.org", "MX")
    domain = services.run_check(domain)
    assert domain.status == Domain.Status.BROKEN and domain.broken_since is not None
    assert domain.is_verified  # still signs, still cannot be deleted by its customer
    assert "records broken" in caplog.text
    publish(domain, spf=False, dkim=False)
    domain = services.run_check(domain)
    assert domain.status == Domain.Status.VERIFIED and domain.broken_since is None


def test_periodic_recheck_checks_only_due_domains(account, dns_server, publish, settings):
    fresh = services.add_domain(account, "fresh.example")
    old = services.add_domain(account, "old.example")
    publish(old)
    Domain.objects.filter(pk=old.pk).update(checked_at=timezone.now() - timezone.timedelta(days=1))
    dns_server.queries.clear()
    counts = services.recheck_due()
    assert counts == {"verified": 1}
    assert {name for name, _t in dns_server.queries} >= {"old.example"}
    assert "fresh.example" not in {name for name, _t in dns_server.queries}
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.status == Domain.Status.VERIFIED and fresh.status == Domain.Status.PENDING


def test_schedule_exists(db):
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="domains-recheck")
    assert schedule.func == "hub.domains.tasks.recheck_domains" and schedule.minutes == 10


def test_resolver_down_changes_no_flag(account, dns_server, publish, settings):
    domain = services.add_domain(account, "example.org")
    publish(domain)
    domain = services.run_check(domain)
    settings.HUB_DNS_RESOLVER = "127.0.0.1:9"  # nothing answers there
    settings.HUB_DNS_TIMEOUT = 0.5
    domain = services.run_check(domain)
    assert domain.status == Domain.Status.VERIFIED and domain.spf_ok
    assert domain.check_detail.startswith("DNS unavailable")


@pytest.mark.parametrize("raw,expected", [
    ("bücher.example", "xn--bcher-kva.example"), ("MAIL.Example.com.", "mail.example.com")])
def test_normalized_names(raw, expected):
    assert services.normalize_domain(raw) == expected


@pytest.mark.parametrize("raw", ["", "localhost", "a..b", "-a.com", "a_b.com", "x." + "a" * 64 + ".com", "1.2.3.4",
                                 "exa mple.com", "a.com/x"])
def test_bad_names_refused(raw):
    with pytest.raises(services.DomainError) as info:
        services.normalize_domain(raw)
    assert info.value.code == "domain_format_error"


def test_duplicate_in_any_account_refused_and_nothing_written(account, dns_server):
    from hub.models import Account

    services.add_domain(account, "example.org")
    other = Account.objects.create(name="other")
    before = (Domain.objects.count(), DkimKey.objects.count())
    for who in (account, other):
        with pytest.raises(services.DomainError) as info:
            services.add_domain(who, "EXAMPLE.org")
        assert info.value.code == "domain_exists"
    assert (Domain.objects.count(), DkimKey.objects.count()) == before


def test_spf_rule_unit(settings):
    settings.HUB_SPF_INCLUDE = "spf.hub.test"
    assert dns.spf_ok(["v=spf1 +include:SPF.hub.test. -all"])
    assert not dns.spf_ok(["v=spf1 include:spf.hub.test.evil -all"])
    assert not dns.spf_ok(["include:spf.hub.test"])


def test_check_many_stops_asking_a_dead_resolver(account, dns_server, settings, monkeypatch):
    services.add_domain(account, "mine.example")
    settings.HUB_DNS_RESOLVER = "127.0.0.1:9"  # nothing answers there
    settings.HUB_DNS_TIMEOUT = 0.3
    asked = []
    real_query = dns._query
    monkeypatch.setattr(dns, "_query", lambda name, rdtype: asked.append(name) or real_query(name, rdtype))
    rows = services.check_domains(account, ["mine.example", "a.example", "b.example"])
    assert [(r.val, r.status) for r in rows] == [("mine.example", 2), ("a.example", 0), ("b.example", 0)]
    assert asked == ["mine.example"]  # the first failure ends the lookups


@pytest.mark.parametrize("text,expected", [("", None), ("10.0.0.53", ("10.0.0.53", 53)),
                                           ("127.0.0.1:5353", ("127.0.0.1", 5353)), ("[::1]:53", ("::1", 53))])
def test_resolver_setting(text, expected):
    assert dns.parse_resolver(text) == expected


def test_bad_resolver_setting_is_a_system_check_error(settings):
    from hub.domains.checks import check_domain_hosts, check_domain_settings

    settings.HUB_DNS_RESOLVER = "host:port"
    assert [p.id for p in check_domain_settings(None)] == ["domains.E001"]
    settings.HUB_DNS_RESOLVER, settings.DEBUG = "", False
    assert check_domain_settings(None) == []
    settings.HUB_SPF_INCLUDE = "spf.smtphub.invalid"
    assert [p.id for p in check_domain_hosts(None)] == ["domains.W001"]
    settings.HUB_SPF_INCLUDE, settings.HUB_MX_HOST = "spf.example.net", "mx.example.net"
    assert check_domain_hosts(None) == []


def test_placeholder_hosts_are_reported_by_the_deploy_check_only(settings):
    from django.core import checks

    settings.DEBUG, settings.HUB_SPF_INCLUDE = False, "spf.smtphub.invalid"
    assert "domains.W001" not in [p.id for p in checks.run_checks()]
    assert "domains.W001" in [p.id for p in checks.run_checks(include_deployment_checks=True)]
