"""`hub_account add|list|topup`: manage customer accounts (tenants) from the shell (JSON
output). A top-up goes through hub.quota.top_up, as the admin's action: atomic, with a
QuotaChange row (no user: the shell)."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from hub import quota
from hub.models import Account

from ._util import dump, full_clean_or_fail


def _date(text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def find_account(ref: str) -> Account:
    """An account by id (digits) or by name."""
    account = (Account.objects.filter(pk=int(ref)).first() if ref.isdigit() else None) or (
        Account.objects.filter(name=ref).first())
    if account is None:
        raise CommandError(f"no account {ref!r}")
    return account


def as_json(a: Account) -> dict:
    return {"id": a.id, "name": a.name, "company": a.company, "enabled": a.enabled,
            "is_manager": a.is_manager, "parent": a.parent_id, "service_status": a.service_status,
            "service_start": a.service_start, "service_end": a.service_end, "quota_type": a.quota_type,
            "quota_total": a.quota_total, "quota_available": a.quota_available, "quota_day": a.quota_day}


class Command(BaseCommand):
    help = "Manage customer accounts and their quota. Output is JSON."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add an account; prints it")
        add.add_argument("--name", required=True)
        add.add_argument("--company", default="")
        add.add_argument("--contact", default="")
        add.add_argument("--email", default="")
        add.add_argument("--manager", action="store_true", help="a manager account (may have sub-accounts)")
        add.add_argument("--parent", default="", help="the manager's id or name (makes a sub-account)")
        add.add_argument("--quota-type", choices=Account.QuotaType.values, default=Account.QuotaType.UNLIMITED)
        add.add_argument("--quota", type=int, default=0,
                         help="initial quota (total, or the daily allowance for --quota-type day)")
        add.add_argument("--service-start", default="", help="YYYY-MM-DD")
        add.add_argument("--service-end", default="", help="YYYY-MM-DD")
        sub.add_parser("list", help="one JSON object per line")
        top = sub.add_parser("topup", help="add to an account's quota bought and available")
        top.add_argument("account", help="id or name")
        top.add_argument("amount", type=int)
        top.add_argument("--note", default="")

    def handle(self, *args, **opts):
        action = opts["action"]
        if action == "list":
            for account in Account.objects.order_by("id"):
                self.stdout.write(dump(as_json(account)))
            return
        if action == "topup":
            account = find_account(opts["account"])
            if opts["amount"] <= 0:
                raise CommandError("the amount must be 1 or more")
            account, change = quota.top_up(account.pk, opts["amount"], note=opts["note"])
            self.stdout.write(dump({**as_json(account), "quota_change": change.pk}))
            return
        if opts["quota"] < 0:
            raise CommandError("--quota must be 0 or more")
        account = Account(name=opts["name"], company=opts["company"], contact=opts["contact"], email=opts["email"],
                          is_manager=opts["manager"], quota_type=opts["quota_type"], quota_total=opts["quota"],
                          quota_available=opts["quota"], service_start=_date(opts["service_start"]),
                          service_end=_date(opts["service_end"]))
        if opts["parent"]:
            account.parent = find_account(opts["parent"])
        full_clean_or_fail(account)
        account.save()
        self.stdout.write(dump(as_json(account)))
