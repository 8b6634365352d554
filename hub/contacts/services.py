"""The contacts domain's rules, as plain functions (docs/contacts.md).
The HTTP APIs (V28 XML and native JSON) and the admin call these and never write the models
themselves. Every function takes the acting account first and only ever sees that account's
rows: another account's id answers NotFound, exactly like an id that does not exist.

File imports live in hub.contacts.imports, signed links in hub.contacts.links and double
opt-in mails in hub.contacts.optin; their public functions are re-exported here.
(Over 400 lines: lists, contacts and subscriptions are one rule set with one tenancy filter,
which a split would repeat in each part.)"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from hub import events
from hub.models import Account

from . import optin, store
from .errors import ContactError, NotFound, owned_list, parse_id
from .imports import get_import, imports, start_import  # noqa: F401  (part of the contract)
from .links import unsubscribe_url  # noqa: F401  (part of the contract)
from .models import Contact, MailList
from .normalize import (  # noqa: F401
    Invalid,
    default_name,
    normalize_email,
    parse_batch,
    parse_subscribe,
    parse_unsubscribe,
    record_values,
)

MAX_LIST_NAME = 200
MAX_DESCRIPTION = 2000
# subscribe()/unsubscribe() take at most this many addresses per call (the reference sets
# no number; every input needs a bound).
MAX_SUBSCRIBE = 5000


@dataclass
class BatchResult:
    added: int = 0
    invalid: int = 0
    duplicate: int = 0
    errors: list[str] = field(default_factory=list)  # "line N: reason"


# --- lists ---------------------------------------------------------------------------------

def _clean_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise ContactError("invalid_name", "the list name is required")
    if len(name) > MAX_LIST_NAME or "\x00" in name:
        raise ContactError("invalid_name", f"the list name is longer than {MAX_LIST_NAME} characters")
    return name


def _clean_description(description: str | None) -> str:
    description = (description or "").strip()
    if len(description) > MAX_DESCRIPTION or "\x00" in description:
        raise ContactError("invalid_description", f"the description is longer than {MAX_DESCRIPTION} characters")
    return description


def create_list(account: Account, name: str, description: str = "", *, enabled: bool = True,
                double_opt_in: bool = False) -> MailList:
    return MailList.objects.create(account=account, name=_clean_name(name),
                                   description=_clean_description(description), enabled=enabled,
                                   double_opt_in=double_opt_in)


def get_list(account: Account, list_id: int | str) -> MailList:
    return owned_list(account, list_id)


def lists(account: Account, list_id: int | None = None) -> QuerySet[MailList]:
    qs = MailList.objects.filter(account=account).order_by("id")
    if list_id is not None:
        qs = qs.filter(pk=parse_id(list_id, "list"))
    return qs


def update_list(account: Account, list_id: int | str, *, name: str | None = None, description: str | None = None,
                enabled: bool | None = None, double_opt_in: bool | None = None) -> MailList:
    mail_list = get_list(account, list_id)
    changes: dict = {}
    if name is not None:
        changes["name"] = _clean_name(name)
    if description is not None:
        changes["description"] = _clean_description(description)
    if enabled is not None:
        changes["enabled"] = bool(enabled)
    if double_opt_in is not None:
        changes["double_opt_in"] = bool(double_opt_in)
    if changes:
        # update(), not save(): save() would write back a contact_count read before a
        # concurrent import moved it.
        MailList.objects.filter(pk=mail_list.pk).update(**changes)
        mail_list.refresh_from_db()
    return mail_list


def delete_list(account: Account, list_id: int | str) -> None:
    """The list and all its contacts (removed in chunks first, see store.delete_all). Refused
    while an import runs into it: the job would lose its target halfway."""
    mail_list = get_list(account, list_id)
    if mail_list.importing:
        raise ContactError("list_importing", "an import into this list is running; delete it when the import ends")
    store.delete_all(mail_list.pk)
    mail_list.delete()


def recount(mail_list: MailList) -> int:
    """Repair tool (admin action): set the counter from a real COUNT(*)."""
    with transaction.atomic():
        count = Contact.objects.filter(mail_list=mail_list).count()
        MailList.objects.filter(pk=mail_list.pk).update(contact_count=count)
    return count


# --- contacts ------------------------------------------------------------------------------

def add_contact(account: Account, list_id: int | str, email: str, **fields) -> Contact:
    """One address (V28 4.8.1). fields: fullname, sex, birthday ("YYYY-MM-DD"), phone, area,
    var1..var10. ContactError "invalid_email" / "invalid_field", "exist" when the list has it."""
    mail_list = get_list(account, list_id)
    try:
        normalized = normalize_email(email)
    except Invalid as exc:
        raise ContactError("invalid_email", str(exc)) from None
    try:
        values = record_values({**fields, "email": normalized})
    except Invalid as exc:
        raise ContactError("invalid_field", str(exc)) from None
    with transaction.atomic():
        added = store.insert(mail_list, [values], now=timezone.now())
        store.bump(mail_list.pk, added)
    if not added:
        raise ContactError("exist", f"{normalized} is already in this list")
    return Contact.objects.get(mail_list=mail_list, email=normalized)


def invalid_records(records: list[dict]) -> list[str]:
    """"line N: reason" for every record add_contacts would count invalid: the APIs refuse a
    batch whole when any is (nothing written), listing the reasons so a client can fix them."""
    errors = []
    for position, record in enumerate(records, 1):
        try:
            record_values(record)
        except Invalid as exc:
            errors.append(f"line {record.get('line', position)}: {exc}")
    return errors


def invalid_addresses(addresses: list[str]) -> list[str]:
    """The same for plain addresses (subscribe, unsubscribe)."""
    errors = []
    for position, address in enumerate(addresses, 1):
        try:
            normalize_email(address)
        except Invalid as exc:
            errors.append(f"line {position}: {exc}")
    return errors


def add_contacts(account: Account, list_id: int | str, records: list[dict]) -> BatchResult:
    """Batch add (V28 4.8.2): at most HUB_CONTACTS_BATCH_MAX records (parse_batch output or
    dicts of add_contact's fields). Invalid records are skipped and reported by line;
    duplicates (within the batch or already in the list) are counted, exactly."""
    limit = settings.HUB_CONTACTS_BATCH_MAX
    if len(records) > limit:
        raise ContactError("too_many", f"at most {limit} records per call; use a file import for more")
    mail_list = get_list(account, list_id)
    result = BatchResult()
    rows = []
    for position, record in enumerate(records, 1):
        try:
            rows.append(record_values(record))
        except Invalid as exc:
            result.invalid += 1
            result.errors.append(f"line {record.get('line', position)}: {exc}")
    with transaction.atomic():
        result.added = store.insert(mail_list, rows, now=timezone.now())
        store.bump(mail_list.pk, result.added)
    result.duplicate = len(rows) - result.added
    return result


def _contacts_of(account: Account, list_id: int | str | None) -> tuple[QuerySet[Contact], int | None]:
    """The contacts of one list (or of all the account's lists when list_id is None), and
    their number from the counters."""
    if list_id is None:
        owned = MailList.objects.filter(account=account)
        total = owned.aggregate(n=Sum("contact_count"))["n"] or 0
        return Contact.objects.filter(mail_list__in=owned.values("pk")), total
    mail_list = get_list(account, list_id)
    return Contact.objects.filter(mail_list=mail_list), mail_list.contact_count


def search_contacts(account: Account, list_id: int | str | None, *, keyword: str = "", email: str = "",
                    after_id: int = 0, offset: int = 0, limit: int = 50) -> tuple[int, list[Contact]]:
    """(total matching, one page ordered by id). `email` finds one address (normalized,
    through the unique index); `keyword` matches part of the address or the name. Page by
    `after_id` (cursor: ids greater than it) or `offset`. `limit` is clamped to
    1..HUB_CONTACTS_PAGE_MAX. list_id None: all the account's lists (V28 4.7 without list_id)."""
    qs, total = _contacts_of(account, list_id)
    if email:
        try:
            qs = qs.filter(email=normalize_email(email))
        except Invalid:
            return 0, []
        total = None
    keyword = keyword.strip()
    limit = max(1, min(int(limit), settings.HUB_CONTACTS_PAGE_MAX))
    offset = max(0, int(offset))
    if keyword and not email and list_id is not None:
        # One list on MariaDB/MySQL: scan the narrow search index (store.keyword_ids).
        list_pk = get_list(account, list_id).pk
        found = store.keyword_page(list_pk, keyword, int(after_id or 0), offset, limit)
        if found is not None:
            total, ids = found
            return total, list(Contact.objects.filter(pk__in=ids).order_by("id")) if ids else []
    if keyword:
        # Addresses are stored lower-case; names match case-insensitively.
        qs = qs.filter(Q(email__contains=keyword.lower()) | Q(fullname__icontains=keyword))
        total = None
    matching = qs
    if after_id:
        qs = qs.filter(pk__gt=int(after_id))
    page = _page(qs, offset, limit)
    if total is None:
        # A keyword or address filter reads the list's rows (LIKE '%kw%' has no index), and
        # COUNT(*) reads them all again. When the first page holds every match, its length
        # is the total: a rare keyword costs one pass over the list, not two.
        total = len(page) if not after_id and not offset and len(page) < limit else matching.count()
    return total, page


def _page(qs: QuerySet[Contact], offset: int, limit: int) -> list[Contact]:
    """`limit` contacts by id after skipping `offset`: their ids first, which the
    (mail_list, id) index covers, then just the page's rows. A plain OFFSET would make
    MariaDB read every skipped row whole, and whole rows after a deep `after_id` make it
    walk the list from its first contact (store.page_after says why)."""
    ids = list(qs.order_by("id").values_list("id", flat=True)[offset:offset + limit])
    return list(Contact.objects.filter(pk__in=ids).order_by("id")) if ids else []


def get_contact(account: Account, contact_id: int | str) -> Contact:
    found = Contact.objects.filter(account=account, pk=parse_id(contact_id, "contact")).first()
    if found is None:
        raise NotFound("no such contact")
    return found


def delete_contact(account: Account, contact_id: int | str) -> None:
    contact = get_contact(account, contact_id)
    store.delete_ids(contact.mail_list_id, [contact.pk])


def empty_list(account: Account, list_id: int | str) -> int:
    """Remove every contact of the list (chunked, see store.delete_all); returns how many."""
    return store.delete_all(get_list(account, list_id).pk)


# --- subscribe / unsubscribe ----------------------------------------------------------------

def _bounded(items: list, what: str) -> None:
    if len(items) > MAX_SUBSCRIBE:
        raise ContactError("too_many", f"at most {MAX_SUBSCRIBE} {what} per call")


def _normalized(items: list[tuple[str, str]], result: BatchResult) -> dict[str, tuple[int, str]]:
    """(email, name) pairs -> {normalized address: (line, name)}; invalid addresses counted
    and reported, repeats counted as duplicates (the first one wins). A missing name is the
    local part of the address (4.11)."""
    found: dict[str, tuple[int, str]] = {}
    for line, (raw, name) in enumerate(items, 1):
        try:
            address = normalize_email(raw)
        except Invalid as exc:
            result.invalid += 1
            result.errors.append(f"line {line}: {exc}")
            continue
        if address in found:
            result.duplicate += 1
        else:
            found[address] = (line, (name or "").strip() or default_name(address))
    return found


def _existing(mail_list: MailList, addresses: list[str]) -> dict[str, tuple[int, bool, bool]]:
    """{address: (id, subscribed, pending)} of those already in the list."""
    found = {}
    for start in range(0, len(addresses), 500):
        for pk, address, subscribed, pending in Contact.objects.filter(
                mail_list=mail_list, email__in=addresses[start:start + 500]).values_list(
                "id", "email", "subscribed", "pending"):
            found[address] = (pk, subscribed, pending)
    return found


def subscribe(account: Account, list_id: int | str, entries: list[tuple[str, str]]) -> BatchResult:
    """V28 4.11: add (email, name) pairs as subscribed, or re-subscribe addresses that had
    unsubscribed; a missing name is the address's local part. Already subscribed (or awaiting
    confirmation) counts as duplicate. On a double opt-in list new and returning addresses
    are added unconfirmed and get a confirmation mail (sent by the hub through one of the
    account's apps; ContactError "no_app" when it has none, before anything is written)."""
    _bounded(entries, "addresses")
    mail_list = get_list(account, list_id)
    app = optin.sending_app(account) if mail_list.double_opt_in else None
    result = BatchResult()
    found = _normalized(entries, result)
    existing = _existing(mail_list, list(found))
    new_rows, returning = [], []
    for address, (line, name) in found.items():
        if address not in existing:
            try:
                new_rows.append(record_values({"email": address, "fullname": name}))
            except Invalid as exc:
                result.invalid += 1
                result.errors.append(f"line {line}: {exc}")
        elif not existing[address][1] and not existing[address][2]:
            returning.append(existing[address][0])
        else:
            result.duplicate += 1
    pending = mail_list.double_opt_in
    now = timezone.now()
    with transaction.atomic():
        inserted = store.insert(mail_list, new_rows, now=now, subscribed=not pending, pending=pending)
        store.bump(mail_list.pk, inserted)
        Contact.objects.filter(pk__in=returning).update(subscribed=not pending, pending=pending,
                                                       unsubscribed_at=None)
    result.duplicate += len(new_rows) - inserted  # added concurrently by someone else
    result.added = inserted + len(returning)
    if app is not None:
        to_confirm = Contact.objects.filter(mail_list=mail_list, pending=True).filter(
            Q(pk__in=returning) | Q(email__in=[row[0] for row in new_rows]))
        for contact in to_confirm.order_by("id"):
            error = optin.send_confirmation(app, mail_list, contact)
            if error:
                line = found.get(contact.email, (0, ""))[0]
                result.errors.append(f"line {line}: confirmation not sent: {error}")
    return result


def unsubscribe(account: Account, list_id: int | str, emails: list[str]) -> BatchResult:
    """V28 4.12: mark addresses unsubscribed, with the time (exported by 4.6). An address
    the list does not have is added as unsubscribed, so a later import or batch add cannot
    subscribe it again (it counts as a duplicate there). Already unsubscribed: duplicate."""
    _bounded(emails, "addresses")
    mail_list = get_list(account, list_id)
    result = BatchResult()
    found = _normalized([(email, "") for email in emails], result)
    existing = _existing(mail_list, list(found))
    leaving = [pk for address, (pk, subscribed, pending) in existing.items() if subscribed or pending]
    result.duplicate += len(existing) - len(leaving)
    new_rows = [record_values({"email": address}) for address in found if address not in existing]
    now = timezone.now()
    with transaction.atomic():
        changed = Contact.objects.filter(pk__in=leaving).update(subscribed=False, pending=False, unsubscribed_at=now)
        inserted = store.insert(mail_list, new_rows, now=now, subscribed=False, unsubscribed_at=now)
        store.bump(mail_list.pk, inserted)
        # Told for the contacts that were subscribed (or awaiting confirmation) only: an
        # address added here as unsubscribed never was on the list.
        tell_unsubscribed(account.pk, mail_list.pk, [(pk, address) for address, (pk, subscribed, pending)
                                                     in existing.items() if subscribed or pending], now, "api")
    result.added = changed + inserted
    result.duplicate += len(new_rows) - inserted
    return result


def unsubscribe_contact(contact: Contact, how: str = "link") -> bool:
    """The signed public link (no account: the token is the authority); `how` is "link"
    or "one-click" (RFC 8058). True when this call changed something."""
    now = timezone.now()
    with transaction.atomic():
        changed = bool(Contact.objects.filter(pk=contact.pk).filter(Q(subscribed=True) | Q(pending=True)).update(
            subscribed=False, pending=False, unsubscribed_at=now))
        if changed:
            tell_unsubscribed(contact.account_id, contact.mail_list_id, [(contact.pk, contact.email)], now, how)
    return changed


def tell_unsubscribed(account_id: int, list_id: int, contacts: list[tuple[int, str]], at: datetime.datetime,
                      how: str) -> None:
    """hub.events `unsubscribed` for each (contact id, address), inside the caller's
    transaction (webhooks write their outbox rows with the change). `how`: link,
    one-click, api or admin."""
    for contact_id, email in contacts:
        events.emit(events.Event(kind=events.Kind.UNSUBSCRIBED, email=email, at=at, account_id=account_id,
                                 contact_id=contact_id, data={"list_id": list_id, "how": how}))


def confirm_contact(contact: Contact) -> bool:
    """Double opt-in confirmation through its signed link. True when this call confirmed."""
    return bool(Contact.objects.filter(pk=contact.pk, pending=True).update(
        subscribed=True, pending=False, unsubscribed_at=None))


def _day_start(value: datetime.date | datetime.datetime | str, next_day: bool = False) -> datetime.datetime:
    if isinstance(value, str):
        try:
            value = datetime.date.fromisoformat(value.strip())
        except ValueError:
            raise ContactError("invalid_date", f"{value[:20]!r} is not a date (YYYY-MM-DD)") from None
    if isinstance(value, datetime.datetime):
        return value
    day = value + datetime.timedelta(days=1) if next_day else value
    return datetime.datetime.combine(day, datetime.time(), timezone.get_current_timezone())


EXPORT_CHUNK = 2000


def unsubscribed_contacts(account: Account, list_id: int | str | None = None,
                          date_from: datetime.date | str | None = None,
                          date_to: datetime.date | str | None = None) -> Iterator[Contact]:
    """Unsubscribed contacts (V28 4.6), by id, read EXPORT_CHUNK rows per query (keyset on
    the id: flat memory on every database, no cursor held open while a client downloads).
    Dates are whole days in the hub's time zone, both ends included. The list and dates are
    checked now (NotFound / ContactError), before the first row is read."""
    qs, _total = _contacts_of(account, list_id)
    qs = qs.filter(subscribed=False, unsubscribed_at__isnull=False)
    if date_from:
        qs = qs.filter(unsubscribed_at__gte=_day_start(date_from))
    if date_to:
        qs = qs.filter(unsubscribed_at__lt=_day_start(date_to, next_day=True))
    return _chunks(qs)


def _chunks(qs: QuerySet[Contact]) -> Iterator[Contact]:
    last = 0
    while True:
        page = list(qs.filter(pk__gt=last).order_by("id")[:EXPORT_CHUNK])
        yield from page
        if len(page) < EXPORT_CHUNK:
            return
        last = page[-1].pk
