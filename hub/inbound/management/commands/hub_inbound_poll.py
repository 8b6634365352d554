"""`manage.py hub_inbound_poll`: read every enabled IMAP bounce mailbox once. Output is JSON."""

import json

from django.core.management.base import BaseCommand

from hub.inbound import imap


class Command(BaseCommand):
    help = "Poll the IMAP bounce mailboxes once (bounces returned to From addresses)."

    def handle(self, *args, **opts):
        for mailbox_id, result in imap.poll_all().items():
            self.stdout.write(json.dumps({"mailbox": mailbox_id, "processed" if isinstance(result, int) else "error":
                                          result}))
