"""Re-encrypt every stored SMTP password with the newest HUB_ENCRYPTION_KEYS key.
Rotate by putting a new key first in the list, running this, then dropping the old key."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from hub import crypto
from hub.models import SmtpServer


class Command(BaseCommand):
    help = "Re-encrypt stored SMTP passwords with the newest encryption key."

    def handle(self, *args, **opts):
        count = 0
        with transaction.atomic():
            for server in SmtpServer.objects.select_for_update().exclude(password_encrypted=""):
                try:
                    server.password_encrypted = crypto.rotate(server.password_encrypted)
                except crypto.DecryptionError as exc:
                    raise CommandError(f"SMTP server {server.id} ({server.name}): {exc}; nothing was changed") from exc
                server.save(update_fields=["password_encrypted"])
                count += 1
        self.stdout.write(f"re-encrypted {count} SMTP password(s)")
