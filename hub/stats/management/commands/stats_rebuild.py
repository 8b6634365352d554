"""manage.py stats_rebuild [--account ID]: count the statistics again from the send log
(hub.stats.rebuild). Bounces and complaints recorded since are dropped (not in the send log)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hub.models import Account
from hub.stats.rebuild import rebuild


class Command(BaseCommand):
    help = "Recount the statistics counters and failed recipients from the send log."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", type=int, help="only this account (id); default: every account")

    def handle(self, *args, **options) -> None:
        account = None
        if options["account"] is not None:
            account = Account.objects.filter(pk=options["account"]).first()
            if account is None:
                raise CommandError(f"no account {options['account']}")
        done = rebuild(account)
        self.stdout.write(f"{done.rows} rows read, {done.counters} counters, {done.failures} failed recipients")
