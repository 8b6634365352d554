"""hub.quota: the service-period and quota rules per quota type, refunds, top-ups, and
exactness under concurrency (threads on one database; two processes, which is how the lead
runs it on MariaDB in CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, transaction

from conftest import subprocess_database_url
from hub import queries, quota
from hub.models import Account, QuotaChange
from hub.refusals import Refusal

REPO_ROOT = Path(__file__).resolve().parents[2]
T = Account.QuotaType


def account(**fields) -> Account:
    values = {"name": f"acct-{Account.objects.count()}", "quota_type": T.TOTAL, "quota_total": 10,
              "quota_available": 10}
    values.update(fields)
    return Account.objects.create(**values)


def fresh(a: Account) -> Account:
    return Account.objects.get(pk=a.pk)


def refused(error: str, func, *args) -> Refusal:
    with pytest.raises(Refusal) as caught:
        func(*args)
    assert caught.value.error == error, caught.value
    return caught.value


# --- total quota --------------------------------------------------------------------------------

def test_total_quota_is_taken_to_the_last_unit_and_then_refused(db):
    a = account(quota_available=5)
    assert quota.reserve(a.pk, 3) == 3
    assert quota.reserve(a.pk, 2) == 2
    assert fresh(a).quota_available == 0
    refusal = refused("quota_exhausted", quota.reserve, a.pk, 1)
    assert refusal.http_status == 403 and "0 left" in refusal.detail
    assert fresh(a).quota_available == 0 and fresh(a).quota_total == 10  # nothing changed


def test_a_request_larger_than_what_is_left_takes_nothing(db):
    a = account(quota_available=2)
    refused("quota_exhausted", quota.reserve, a.pk, 3)
    assert fresh(a).quota_available == 2


def test_refund_gives_back_to_a_total_account_whatever_the_day(db):
    a = account(quota_available=4)
    quota.reserve(a.pk, 4)
    assert quota.refund(a.pk, 3, charged_on=quota.today() - timedelta(days=30)) is True
    assert fresh(a).quota_available == 3


# --- unlimited ---------------------------------------------------------------------------------

def test_unlimited_takes_nothing_but_still_checks_the_service(db):
    a = account(quota_type=T.UNLIMITED, quota_total=0, quota_available=0)
    assert quota.reserve(a.pk, 1000) == 0
    assert fresh(a).quota_available == 0 and fresh(a).quota_day is None
    assert quota.refund(a.pk, 5) is False and fresh(a).quota_available == 0
    Account.objects.filter(pk=a.pk).update(service_end=quota.today() - timedelta(days=1))
    refused("service_expired", quota.reserve, a.pk, 1)


def test_the_default_account_is_unlimited_and_in_service(db):
    default = Account.default()
    assert default.quota_type == T.UNLIMITED
    assert quota.reserve(default.pk, 1) == 0


# --- daily quota --------------------------------------------------------------------------------

def test_daily_allowance_starts_again_on_a_new_day(db):
    today = quota.today()
    a = account(quota_type=T.DAILY, quota_total=5, quota_available=0, quota_day=today - timedelta(days=1))
    assert quota.reserve(a.pk, 2) == 2  # yesterday's exhausted allowance does not count today
    a = fresh(a)
    assert (a.quota_available, a.quota_day) == (3, today)
    assert quota.reserve(a.pk, 3) == 3
    refused("quota_exhausted", quota.reserve, a.pk, 1)
    assert fresh(a).quota_available == 0
    # Tomorrow the allowance is whole again.
    assert quota.reserve(a.pk, 5, today + timedelta(days=1)) == 5
    assert fresh(a).quota_day == today + timedelta(days=1)


def test_daily_account_never_used_gets_its_allowance(db):
    a = account(quota_type=T.DAILY, quota_total=2, quota_available=0, quota_day=None)
    refused("quota_exhausted", quota.reserve, a.pk, 3)
    assert fresh(a).quota_day is None  # a refusal changes nothing, not even the day
    assert quota.reserve(a.pk, 2) == 2


def test_daily_refund_only_on_the_day_it_was_charged(db):
    today = quota.today()
    a = account(quota_type=T.DAILY, quota_total=5, quota_available=5, quota_day=today)
    quota.reserve(a.pk, 4)
    assert quota.refund(a.pk, 4, charged_on=today - timedelta(days=1)) is False
    assert fresh(a).quota_available == 1
    assert quota.refund(a.pk, 4, charged_on=today) is True
    assert fresh(a).quota_available == 5


# --- service period and status -----------------------------------------------------------------

@pytest.mark.parametrize("fields,error", [
    ({"enabled": False}, "account_disabled"),
    ({"service_status": Account.ServiceStatus.DISABLED}, "service_disabled"),
    ({"service_start": 1}, "service_not_started"),
    ({"service_end": -1}, "service_expired"),
])
@pytest.mark.parametrize("quota_type", [T.TOTAL, T.DAILY, T.UNLIMITED])
def test_out_of_service_is_refused_and_takes_nothing(db, fields, error, quota_type):
    fields = {k: (quota.today() + timedelta(days=v) if k in ("service_start", "service_end") else v)
              for k, v in fields.items()}
    a = account(quota_type=quota_type, **fields)
    refusal = refused(error, quota.reserve, a.pk, 1)
    assert refusal.http_status == 403 and refusal.msg
    after = fresh(a)
    assert (after.quota_available, after.quota_day) == (10, None)


def test_service_dates_are_inclusive(db):
    today = quota.today()
    a = account(service_start=today, service_end=today)
    assert quota.reserve(a.pk, 1) == 1
    refused("service_not_started", quota.reserve, a.pk, 1, today - timedelta(days=1))
    refused("service_expired", quota.reserve, a.pk, 1, today + timedelta(days=1))


def test_today_is_the_local_date_of_settings_time_zone(settings):
    from django.utils import timezone

    assert settings.TIME_ZONE == "Asia/Shanghai"  # the default, as the V28 platform
    assert quota.today() == timezone.localdate()


# --- the app's terms read with the app ------------------------------------------------------------

def test_terms_read_with_the_app_equal_a_fresh_read(make_server, make_app):
    today = quota.today()
    a = account(quota_type=T.DAILY, enabled=False, service_status="disabled", service_start=today,
                service_end=today + timedelta(days=3))
    app = make_app(make_server(), account=a).app
    joined = queries.app(app.pk)
    assert quota.terms_of(joined) == quota.terms_of(app, fresh=True) == quota.Terms(
        enabled=False, service_status="disabled", service_start=today, service_end=today + timedelta(days=3),
        quota_type=T.DAILY)
    default_app = make_app(make_server()).app
    assert quota.terms_of(queries.app(default_app.pk)) == quota.Terms()


# --- top-up ---------------------------------------------------------------------------------------

def test_top_up_adds_to_bought_and_available_with_an_audit_row(db, superuser):
    a = account(quota_total=10, quota_available=4)
    after, change = quota.top_up(a.pk, 100, note="order 42", user=superuser)
    assert (after.quota_total, after.quota_available) == (110, 104)
    assert (change.delta, change.quota_available_after, change.note, change.user) == (100, 104, "order 42", superuser)
    assert QuotaChange.objects.count() == 1
    with pytest.raises(ValueError):
        quota.top_up(a.pk, 0)
    assert QuotaChange.objects.count() == 1


# --- concurrency ----------------------------------------------------------------------------------

def _reserve_many(account_id: int, times: int, results: list, barrier: threading.Barrier) -> None:
    try:
        barrier.wait(timeout=30)
        for _ in range(times):
            try:
                with transaction.atomic():
                    results.append(quota.reserve(account_id, 1))
            except Refusal as refusal:
                results.append(refusal.error)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("quota_type", [T.TOTAL, T.DAILY])
def test_threads_take_exactly_the_quota(quota_type):
    # A daily account starting a new day: the reset and the taking race as well.
    a = account(quota_type=quota_type, quota_total=25, quota_available=25 if quota_type == T.TOTAL else 0,
                quota_day=None if quota_type == T.TOTAL else quota.today() - timedelta(days=1))
    threads, results = 4, []
    barrier = threading.Barrier(threads)
    workers = [threading.Thread(target=_reserve_many, args=(a.pk, 10, results, barrier)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers)
    assert len(results) == 40
    assert results.count(1) == 25 and results.count("quota_exhausted") == 15
    assert fresh(a).quota_available == 0


WORKER = """
import json, sys, django
django.setup()
from django.db import transaction
from hub import quota
from hub.refusals import Refusal
account_id, times = int(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
taken = refused = 0
for _ in range(times):
    try:
        with transaction.atomic():
            taken += quota.reserve(account_id, 1)
    except Refusal:
        refused += 1
print(json.dumps({"taken": taken, "refused": refused}), flush=True)
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_take_exactly_the_quota():
    """Two processes on the test database, started together. The lead runs this on MariaDB
    (DATABASE_URL=mysql://...); on SQLite it runs too, which proves the test itself."""
    a = account(quota_total=60, quota_available=60)
    env = {**os.environ, "DATABASE_URL": subprocess_database_url(), "DJANGO_SETTINGS_MODULE": "smtphub.settings"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(a.pk), "50"], cwd=REPO_ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs)
    assert sum(o["taken"] for o in outs) == 60
    assert sum(o["refused"] for o in outs) == 40
    assert fresh(a).quota_available == 0
