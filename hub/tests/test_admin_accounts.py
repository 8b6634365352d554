"""Accounts in the admin: the list and change pages with apps, sub-accounts and the quota
trail; the quota is read-only on the form and changes only through "Top up quota", which
writes a QuotaChange and a LogEntry; who may top up."""

from __future__ import annotations

from django.contrib.admin.models import LogEntry

from hub.models import Account, QuotaChange

from .test_admin_support import body, messages_of


def account_form(**overrides) -> dict:
    data = {"name": "acme", "company": "Acme 有限公司", "enabled": "on", "contact": "张三", "phone": "",
            "mobile": "", "email": "", "im": "", "address": "", "parent": "", "service_status": "enabled",
            "service_start": "", "service_end": "", "send_type": "remote", "quota_type": "all", "_save": "Save"}
    data.update(overrides)
    return data


def metered(**fields) -> Account:
    values = {"name": "acme", "company": "Acme 有限公司", "quota_type": "all", "quota_total": 100,
              "quota_available": 40}
    values.update(fields)
    return Account.objects.create(**values)


def test_list_and_change_page_show_apps_subaccounts_and_quota(su, make_server, make_app):
    manager = metered(name="boss-co", is_manager=True)
    sub = metered(name="child-co", parent=manager)
    app = make_app(make_server(), name="商城", account=manager).app
    listing = su.get("/admin/hub/account/")
    assert listing.status_code == 200
    assert "boss-co" in body(listing) and "child-co" in body(listing)
    page = su.get(f"/admin/hub/account/{manager.pk}/change/")
    text = body(page)
    assert page.status_code == 200
    assert f'href="/admin/hub/app/{app.pk}/change/"' in text and "商城" in text
    assert f'href="/admin/hub/account/{sub.pk}/change/"' in text
    assert "Top up quota" in text and "No quota changes yet." in text
    assert 'name="quota_available"' not in text  # read-only: no input


def test_saving_the_form_cannot_change_the_quota(su):
    a = metered()
    r = su.post(f"/admin/hub/account/{a.pk}/change/", account_form(quota_total="999999", quota_available="999999",
                                                                   company="Acme 新"))
    assert r.status_code == 302, body(r)
    a.refresh_from_db()
    assert (a.company, a.quota_total, a.quota_available) == ("Acme 新", 100, 40)


def test_top_up_adds_atomically_and_leaves_an_audit_trail(su, superuser):
    a = metered()
    form = su.get(f"/admin/hub/account/{a.pk}/top-up/")
    assert form.status_code == 200 and 'name="amount"' in body(form)
    r = su.post(f"/admin/hub/account/{a.pk}/top-up/", {"amount": "500", "note": "发票 2026-001"}, follow=True)
    assert r.status_code == 200
    a.refresh_from_db()
    assert (a.quota_total, a.quota_available) == (600, 540)
    change = QuotaChange.objects.get()
    assert (change.account, change.delta, change.quota_available_after, change.reason, change.note, change.user) == (
        a, 500, 540, "topup", "发票 2026-001", superuser)
    entry = LogEntry.objects.get(object_id=str(a.pk))
    assert entry.user == superuser and "500" in entry.get_change_message() and "发票 2026-001" in entry.change_message
    assert any("540" in m for m in messages_of(r))
    assert "发票 2026-001" in body(su.get(f"/admin/hub/account/{a.pk}/change/"))
    assert su.get("/admin/hub/quotachange/").status_code == 200


def test_a_bad_amount_is_refused_and_nothing_changes(su):
    a = metered()
    for amount in ("0", "-5", "abc", "", "10000000000000"):
        r = su.post(f"/admin/hub/account/{a.pk}/top-up/", {"amount": amount})
        assert r.status_code == 200, amount  # the form again, with its error
        assert 'name="amount"' in body(r)
    a.refresh_from_db()
    assert (a.quota_total, a.quota_available) == (100, 40)
    assert QuotaChange.objects.count() == 0 and LogEntry.objects.count() == 0


def test_staff_without_change_permission_cannot_top_up(staff_factory):
    a = metered()
    viewer = staff_factory("hub.view_account")
    assert viewer.get(f"/admin/hub/account/{a.pk}/change/").status_code == 200
    for method in (viewer.get, viewer.post):
        assert method(f"/admin/hub/account/{a.pk}/top-up/", {"amount": "5"}).status_code == 403
    nobody = staff_factory()
    assert nobody.post(f"/admin/hub/account/{a.pk}/top-up/", {"amount": "5"}).status_code == 403
    a.refresh_from_db()
    assert (a.quota_total, a.quota_available) == (100, 40)
    assert QuotaChange.objects.count() == 0 and LogEntry.objects.count() == 0


def test_the_audit_trail_cannot_be_edited(su):
    a = metered()
    QuotaChange.objects.create(account=a, delta=5, quota_available_after=45)
    change = QuotaChange.objects.get()
    assert su.get("/admin/hub/quotachange/add/").status_code == 403
    assert su.post(f"/admin/hub/quotachange/{change.pk}/delete/", {"post": "yes"}).status_code == 403
    assert QuotaChange.objects.count() == 1


def test_a_sub_account_needs_a_manager(su):
    plain = metered(name="plain")
    r = su.post("/admin/hub/account/add/", account_form(name="child", parent=str(plain.pk)))
    assert r.status_code == 200 and "must be marked as a manager" in body(r)
    assert not Account.objects.filter(name="child").exists()


def test_accounts_are_in_the_navigation(su):
    assert 'href="/admin/hub/account/"' in body(su.get("/admin/"))
