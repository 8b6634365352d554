"""hub.tenancy.acting_account: own account, a manager acting for its sub-account, and every
refusal (another account, a non-manager, a disabled account, malformed ids)."""

from __future__ import annotations

import pytest

from hub.models import Account, App
from hub.tenancy import (
    AccountDisabled,
    AccountNotFound,
    InvalidTenancyParameter,
    TenancyError,
    acting_account,
)


def _app(account: Account) -> App:
    app = App(name=f"{account.name} app", account=account)
    app.rotate_secret()
    app.save()
    return app


@pytest.fixture
def family(db):
    manager = Account.objects.create(name="manager", is_manager=True)
    child = Account.objects.create(name="child", parent=manager)
    stranger = Account.objects.create(name="stranger")
    other_manager = Account.objects.create(name="other-manager", is_manager=True)
    others_child = Account.objects.create(name="others-child", parent=other_manager)
    return manager, child, stranger, others_child


def test_own_account_without_customer_id(family):
    _manager, child, stranger, _ = family
    assert acting_account(_app(stranger)) == stranger
    assert acting_account(_app(stranger), "", "customer") == stranger
    # One's own id is one's own account, whatever the user_type.
    assert acting_account(_app(stranger), str(stranger.pk), "customer") == stranger
    assert acting_account(_app(child), f" {child.pk} ") == child


def test_manager_acts_for_its_sub_account(family):
    manager, child, _, _ = family
    app = _app(manager)
    assert acting_account(app, str(child.pk)) == child
    assert acting_account(app, str(child.pk), "manager") == child
    assert acting_account(app, str(child.pk), "MANAGER") == child


@pytest.mark.parametrize("who", ["stranger", "others_child", "missing"])
def test_manager_refused_for_an_account_that_is_not_its_child(family, who):
    manager, _, stranger, others_child = family
    target = {"stranger": stranger.pk, "others_child": others_child.pk, "missing": 999999}[who]
    with pytest.raises(AccountNotFound) as info:
        acting_account(_app(manager), str(target), "manager")
    assert info.value.code == "not_exist" and info.value.http_status == 404


def test_customer_type_with_another_id_is_refused(family):
    manager, child, _, _ = family
    with pytest.raises(AccountNotFound):
        acting_account(_app(manager), str(child.pk), "customer")


def test_non_manager_cannot_act_for_anyone(family):
    manager, child, stranger, _ = family
    # Even a parent link is not enough without the manager flag.
    manager.is_manager = False
    manager.save()
    with pytest.raises(TenancyError) as info:
        acting_account(_app(manager), str(child.pk), "manager")
    assert info.value.code == "forbidden" and info.value.http_status == 403
    with pytest.raises(TenancyError):
        acting_account(_app(stranger), str(child.pk))


def test_a_sub_account_cannot_act_for_its_manager(family):
    manager, child, _, _ = family
    with pytest.raises(TenancyError):
        acting_account(_app(child), str(manager.pk))


def test_disabled_accounts_are_refused(family):
    manager, child, _, _ = family
    app = _app(manager)
    child.enabled = False
    child.save()
    with pytest.raises(AccountDisabled):
        acting_account(app, str(child.pk))
    manager.enabled = False
    manager.save()
    app.refresh_from_db()
    with pytest.raises(AccountDisabled) as info:
        acting_account(app)
    assert info.value.code == "account_disabled" and info.value.http_status == 403


@pytest.mark.parametrize("customer_id", ["abc", "-1", "1.5", "١٢", "9" * 30])
def test_malformed_customer_id(family, customer_id):
    manager = family[0]
    with pytest.raises(InvalidTenancyParameter):
        acting_account(_app(manager), customer_id)


def test_unknown_user_type(family):
    with pytest.raises(InvalidTenancyParameter):
        acting_account(_app(family[0]), "", "admin")
