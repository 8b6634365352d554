"""`hub_suppression list|remove`: the addresses an account may not send to (hard bounces,
repeated soft bounces, complaints, unsubscribes, manual entries). Accounts are named by id,
or by one of their apps (`--app`, as before suppression was per account)."""

from django.core.management.base import BaseCommand, CommandError

from hub.delivery import suppression
from hub.models import App, Suppression

from ._util import dump


def _account(opts) -> int | None:
    if opts.get("account"):
        return opts["account"]
    if opts.get("app"):
        account_id = App.objects.filter(pk=opts["app"]).values_list("account_id", flat=True).first()
        if account_id is None:
            raise CommandError(f"no app with AppID {opts['app']}")
        return account_id
    return None


class Command(BaseCommand):
    help = "List or remove suppressed recipients. Output is JSON."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        ls = sub.add_parser("list", help="one JSON object per line")
        ls.add_argument("--account", type=int, help="only this account id")
        ls.add_argument("--app", type=int, help="only the account of this AppID")
        rm = sub.add_parser("remove", help="allow sending to an address again")
        rm.add_argument("--account", type=int)
        rm.add_argument("--app", type=int, help="the account of this AppID")
        rm.add_argument("email")

    def handle(self, *args, **opts):
        account_id = _account(opts)
        if opts["action"] == "list":
            qs = Suppression.objects.order_by("id")
            if account_id is not None:
                qs = qs.filter(account_id=account_id)
            for s in qs:
                self.stdout.write(dump({"account": s.account_id, "appid": s.app_id, "email": s.email,
                                        "cause": s.cause, "bulk_only": s.bulk_only, "smtp_code": s.smtp_code,
                                        "smtp_reply": s.smtp_reply, "created_at": s.created_at.isoformat()}))
            return
        if account_id is None:
            raise CommandError("give --account or --app")
        email = opts["email"].strip().lower()
        if not suppression.remove(account_id, email):
            raise CommandError(f"{opts['email']} is not suppressed for account {account_id}")
        self.stdout.write(dump({"account": account_id, "email": email, "removed": True}))
