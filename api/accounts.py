"""What both APIs show about an account (V28 1.1 and 1.2; the native `/api/v1/account`).
Presentation only: one place decides how an unlimited quota or an unset date is shown."""

from __future__ import annotations

from hub import quota
from hub.models import Account

# Shown as qty_available / qty_buytotal when the account has no quota (V28 knows only
# `all` and `day`; -1 is the usual "no limit" and cannot be mistaken for "nothing left").
UNLIMITED = -1


def customer_info(account: Account) -> dict[str, object]:
    """V28 1.1 `<customer>` fields, in the reference's order."""
    return {
        "id": account.pk,
        "username": account.name,
        "company": account.company,
        "contact": account.contact,
        "phone": account.phone,
        "mobile": account.mobile,
        "email": account.email,
        "im": account.im,
        "address": account.address,
    }


def _date(value) -> str:
    return value.isoformat() if value else ""


def quota_available(account: Account) -> int:
    """What is left to send. A daily quota whose day has passed (no message sent today yet)
    has today's full allowance, even though the stored counter still holds yesterday's rest:
    the quota service resets it on the first send of the day."""
    if account.quota_type == Account.QuotaType.UNLIMITED:
        return UNLIMITED
    return quota.available_on(account, quota.today())


def service_info(account: Account) -> dict[str, object]:
    """V28 1.2 `<service>` fields in the order we emit them: the sample's order, with
    `service_type` and `send_type` (described in the notes, absent from the sample) right
    after `service_status` (inventory (e) #36)."""
    unlimited = account.quota_type == Account.QuotaType.UNLIMITED
    return {
        "id": account.pk,
        "service_status": account.service_status,
        "service_type": account.quota_type,  # "all", "day", or our "unlimited"
        "send_type": account.send_type,
        "beginning_date": _date(account.service_start),
        "expiration_date": _date(account.service_end),
        "qty_available": quota_available(account),
        "qty_buytotal": UNLIMITED if unlimited else account.quota_total,
    }
