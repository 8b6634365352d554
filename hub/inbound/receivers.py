"""hub.events receivers of the inbound app: an unsubscribe (told by whoever records it:
contacts, the public unsubscribe page, the APIs) suppresses the address for campaign mail
of the account, as its policy says. Cheap: one policy read and one INSERT per unsubscribe."""

from __future__ import annotations

from hub import events
from hub.delivery import suppression


def on_event(sender, event: events.Event, **kwargs) -> None:
    if event.kind != events.Kind.UNSUBSCRIBED or not event.email:
        return
    account_id = event.account_id
    if account_id is None and event.app_id is not None:
        account_id = suppression.account_of_app(event.app_id)
    if account_id is None:
        return
    suppression.record_unsubscribe(account_id, event.email, str(event.data.get("how", "")))
