"""django-q2 entry point: `poll_mailboxes` runs every 5 minutes by the schedule
"inbound-imap-poll" (migration 0002; change it under "Scheduled tasks"), or run
`manage.py hub_inbound_poll` from cron."""

from __future__ import annotations

from . import imap


def poll_mailboxes() -> dict:
    return imap.poll_all()
