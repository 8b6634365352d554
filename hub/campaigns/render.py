"""The campaign rows' content at delivery (registered with hub.delivery.render in
CampaignsConfig.ready): template + contact -> subject, bodies and headers.

Per process, a campaign's settings are cached for CACHE_SECONDS (an edit of the sender name
or reply-to reaches every worker within that time), a template's attachments per revision;
the compiled template is hub.mailtemplates.personalize's own cache. The contacts of a
claimed batch are read in one query when the batch is claimed (prefetch_contacts); a row
delivered without that (a test, a single claim) reads its contact by primary key."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from django.db import connection

from hub.contacts import links as contact_links
from hub.contacts.models import Contact
from hub.delivery.render import NotRenderable, Parts
from hub.mailtemplates.links import links_for
from hub.mailtemplates.models import Template
from hub.mailtemplates.personalize import contact_values, render
from hub.tracking.instrument import instrument

from .dispatch import MARKER
from .models import Campaign

CACHE_SECONDS = 5.0


@dataclass
class _Cached:
    at: float
    campaign: Campaign


_campaigns: dict[int, _Cached] = {}
_templates: dict[tuple, tuple[Template, tuple]] = {}


def clear_caches() -> None:
    _campaigns.clear()
    _templates.clear()
    _heads.clear()


def _campaign(pk: int) -> Campaign:
    found = _campaigns.get(pk)
    if found is not None and time.monotonic() - found.at < CACHE_SECONDS:
        return found.campaign
    campaign = Campaign.objects.filter(pk=pk).first()
    if campaign is None:
        _campaigns.pop(pk, None)
        raise NotRenderable(f"campaign {pk} no longer exists")
    if len(_campaigns) > 256:
        _campaigns.clear()
    _campaigns[pk] = _Cached(time.monotonic(), campaign)
    return campaign


_heads: dict[int, tuple[float, tuple]] = {}


def _template(pk: int) -> tuple[Template, tuple]:
    """The template and its attachments, re-read when its revision changed. The revision is
    looked up at most once per CACHE_SECONDS per process (an edit reaches every worker within
    that time, as a campaign's settings do): a query per row was a fifth of the render's cost."""
    found_head = _heads.get(pk)
    if found_head is not None and time.monotonic() - found_head[0] < CACHE_SECONDS:
        head = found_head[1]
    else:
        head = Template.objects.filter(pk=pk).values_list("revision", "updated_at").first()
        if head is None:
            _heads.pop(pk, None)
            raise NotRenderable(f"template {pk} no longer exists")
        if len(_heads) > 256:
            _heads.clear()
        _heads[pk] = (time.monotonic(), head)
    key = (pk, *head)
    found = _templates.get(key)
    if found is None:
        template = Template.objects.get(pk=pk)
        files = tuple((a.filename, a.content_type, bytes(a.content)) for a in template.attachments.all())
        if len(_templates) > 32:
            _templates.clear()
        found = _templates[key] = (template, files)
    return found


@functools.cache
def _contact_sql() -> str:
    table, pk = connection.ops.quote_name(Contact._meta.db_table), connection.ops.quote_name(Contact._meta.pk.column)
    return f"SELECT * FROM {table} WHERE {pk} = %s"


def _contact(pk: int) -> Contact | None:
    """The row's contact, by a raw statement built once: compiling the queryset for each row
    cost as much as running it (the reason hub.queries exists; raw() still converts fields)."""
    found = list(Contact.objects.raw(_contact_sql(), [pk]))
    return found[0] if found else None


_NOT_PREFETCHED = object()


def prefetch_contacts(rows: list) -> None:
    """One query for the contacts of a claimed batch's campaign rows (registered with
    hub.delivery.render): each row carries its contact (None: deleted) to render_row."""
    found = Contact.objects.in_bulk({row.contact_id for row in rows if row.contact_id is not None})
    for row in rows:
        row.contact_at_claim = found.get(row.contact_id)


def render_row(row) -> Parts:
    match = MARKER.match(row.subject or "")
    if match is None or int(match.group(1)) != row.campaign_id:
        raise NotRenderable(f"row {row.pk} has no campaign marker")
    template_id, subject_index = int(match.group(2)), int(match.group(3)) - 1
    campaign = _campaign(row.campaign_id)
    from_email = ""
    if match.group(4):  # a mailbox / verified-domain sender (the sender cannot change once started)
        senders = campaign.senders or []
        k = int(match.group(4)) - 1
        if not 0 <= k < len(senders):
            raise NotRenderable(f"row {row.pk} names sender {k + 1} the campaign does not have")
        from_email = senders[k][1]
    template, files = _template(template_id)
    contact = getattr(row, "contact_at_claim", _NOT_PREFETCHED)
    if contact is _NOT_PREFETCHED:
        contact = _contact(row.contact_id)
    if contact is None:
        raise NotRenderable(f"contact {row.contact_id} no longer exists")
    links = links_for(template, contact)
    rendered = render(template, contact_values(contact), links, subject_index=subject_index)
    # track_status 1/2: the open pixel, and (2) links rewritten to signed click URLs.
    html = instrument(rendered.html, row, campaign, template) if campaign.track_status else rendered.html
    headers: dict[str, str] = {}
    if campaign.subs_link:  # the link the body carries (signing it twice cost a tenth of the render)
        headers.update({"List-Unsubscribe": f"<{links['unsubscribe_url']}>",
                        "List-Unsubscribe-Post": contact_links.ONE_CLICK_BODY})
    if campaign.is_need_receipt:
        receipt_to = campaign.send_replyto or (campaign.send_account if "@" in campaign.send_account else "")
        if receipt_to:
            headers["Disposition-Notification-To"] = f"<{receipt_to}>"
    headers["X-SMTPHub-Campaign"] = campaign.sn or str(campaign.pk)
    return Parts(subject=rendered.subject, html=html, text=rendered.text, from_name=campaign.send_fullname,
                 from_email=from_email,
                 to_name=contact.fullname, reply_to=campaign.send_replyto, headers=headers,
                 encoding=template.encoding, attachments=files)
