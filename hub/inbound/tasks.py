"""django-q2 entry point: schedule `hub.inbound.tasks.poll_mailboxes` (admin: Scheduled tasks,
every HUB_IMAP_POLL_SECONDS) or run `manage.py hub_inbound_poll` from cron."""

from __future__ import annotations

from . import imap


def poll_mailboxes() -> dict:
    return imap.poll_all()
