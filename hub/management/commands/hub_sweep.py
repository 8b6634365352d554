"""Run the sweeper once now (it also runs every minute inside qcluster)."""

import json

from django.core.management.base import BaseCommand

from hub.sweeper import sweep


class Command(BaseCommand):
    help = "Queue due retries and rescue messages stuck in queued/sending."

    def handle(self, *args, **opts):
        self.stdout.write(json.dumps(sweep()))
