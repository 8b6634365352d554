"""Which account a request acts for.

An app always acts for its own account. A *manager* account's app may act for one of its
direct sub-accounts (`Account.parent`) by naming it (V28's `customer_id`, together with
`user_type=manager` where V28 has that parameter). Both APIs call `acting_account` and
nothing else decides tenancy, so the rule lives in one place.

Refusals never tell a caller whether an account it may not use exists: any id that is not
the caller's own sub-account answers the same "not found"."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from .models import Account, App

USER_TYPES = ("", "customer", "manager")


class TenancyError(Exception):
    """The caller may not act for the account it asked for. `code` is a short identifier
    the APIs put in their answer; `http_status` is the status they answer with."""

    code = "forbidden"
    http_status = 403

    def __init__(self, message: str) -> None:
        self.message = str(message)
        super().__init__(self.message)


class AccountNotFound(TenancyError):
    code = "not_exist"
    http_status = 404


class AccountDisabled(TenancyError):
    code = "account_disabled"
    http_status = 403


class InvalidTenancyParameter(TenancyError):
    code = "param_error"
    http_status = 400


def acting_account(app: App, customer_id: str = "", user_type: str = "") -> Account:
    """The account `app` acts for in this request.

    - No `customer_id` (or the caller's own id): the app's account.
    - `customer_id` of a direct sub-account of the app's account, when that account is a
      manager: the sub-account. `user_type` may be "" (the chapters that do not have the
      parameter) or "manager"; "customer" with another account's id is refused, as V28
      says a customer's `customer_id` must be its own (inventory (e) #41).
    - Anything else: AccountNotFound (same answer whether the id exists or not).
    A disabled account (the caller's own or the sub-account) is refused."""
    customer_id = (customer_id or "").strip()
    user_type = (user_type or "").strip().lower()
    if user_type not in USER_TYPES:
        raise InvalidTenancyParameter(_("user_type must be customer or manager"))
    own = app.account
    if own is None:  # only an unsaved App has none; never act for "nobody"
        raise AccountNotFound(_("the app has no account"))
    if not own.enabled:
        raise AccountDisabled(_("the account is disabled"))
    if not customer_id or customer_id == str(own.pk):
        return own
    if not (customer_id.isascii() and customer_id.isdigit() and len(customer_id) < 19):
        raise InvalidTenancyParameter(_("customer_id must be a number"))
    if user_type == "customer":
        raise AccountNotFound(_("customer not found"))
    if not own.is_manager:
        # Not a leak: the caller knows its own account is not a manager.
        raise TenancyError(_("only a manager account may act for another customer"))
    sub = Account.objects.filter(pk=int(customer_id), parent=own).first()
    if sub is None:
        raise AccountNotFound(_("customer not found"))
    if not sub.enabled:
        raise AccountDisabled(_("the customer's account is disabled"))
    return sub
