"""DKIM keys from the shell: the records to publish, and key rotation.

    manage.py domains_dkim records example.org
    manage.py domains_dkim rotate example.org      # make next key(s); publish their records
    manage.py domains_dkim activate example.org    # sign with them once DNS has them
    manage.py domains_dkim check example.org       # check DNS now
Private keys are never printed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hub.domains import services
from hub.domains.models import Domain


class Command(BaseCommand):
    help = "Show a domain's DNS records, check it, or rotate its DKIM keys."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["records", "rotate", "activate", "check"])
        parser.add_argument("domain")
        parser.add_argument("--force", action="store_true", help="activate without checking DNS first")

    def handle(self, *args, action: str, domain: str, force: bool, **options) -> None:
        try:
            name = services.normalize_domain(domain)
        except services.DomainError as exc:
            raise CommandError(exc.message) from None
        obj = Domain.objects.filter(name=name).first()
        if obj is None:
            raise CommandError(f"no domain {name}")
        try:
            if action == "rotate":
                services.start_rotation(obj)
            elif action == "activate":
                services.activate_next(obj, force=force)
            elif action == "check":
                obj = services.run_check(obj)
                self.stdout.write(f"status {obj.status}: SPF {obj.spf_ok}, MX {obj.mx_ok}, DKIM {obj.dkim_ok}")
                if obj.check_detail:
                    self.stdout.write(obj.check_detail)
        except services.DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        for record in services.records(obj):
            note = f"   ({record.note})" if record.note else ""
            self.stdout.write(f"{record.type}\t{record.name}\t{record.value}{note}")
