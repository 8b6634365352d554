"""Resume or fail stale import jobs now (the schedule does it every minute)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from hub.contacts.imports import sweep


class Command(BaseCommand):
    help = "Requeue imports whose worker was lost (resume from their checkpoint), fail those lost too often."

    def handle(self, *args, **options) -> None:
        self.stdout.write(json.dumps(sweep()))
