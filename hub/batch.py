"""Accepting a batch: up to HUB_BATCH_MAX_MESSAGES messages in one request
(POST /api/v1/send/batch), written in one transaction, or none of them.

All or nothing: every message is validated first (the same rules as a single send,
hub.sending.validate, and the suppression list); if any is refused, the whole batch is refused
with the reason of each refused message by its index, and nothing is written. A client fixes
or drops those and sends the batch again (with the same Idempotency-Key if it used one: a
refused batch does not consume the key). Why not accept the good ones: the key then names
exactly one outcome, a retry cannot half-duplicate a batch, and "one transaction" holds.

Quota: the whole batch's recipients are reserved in the transaction that writes the rows
(hub.quota.reserve); an account without enough left refuses the batch. The per-minute API
rate limit counts the batch as one request (hub.access.admit, as the single send).

Personalization (provisional until the templates app lands on main): in the "recipients"
form, `{{name}}` in the subject, HTML and text is replaced by that recipient's variable
(values HTML-escaped in the HTML body; an unknown name is left as it is). Variable names are
letters, digits and underscores."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from email.utils import make_msgid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.html import escape

from . import queries, quota
from .delivery.outbox import wake_workers
from .models import App, IdempotencyKey, SendLog
from .refusals import Refusal
from .sending import IDEMPOTENCY_TTL, SendRequest, envelope_addresses, primary_sender, recipient_count, validate

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]{1,64})\s*\}\}")


@dataclass
class BatchRefused(Exception):
    """One or more messages of a batch were refused: nothing was written."""

    refused: list[tuple[int, Refusal]] = field(default_factory=list)


@dataclass
class BatchResult:
    rows: list[SendLog]
    replayed: bool = False


def personalize(req: SendRequest, variables: dict[str, str]) -> SendRequest:
    """The request with `{{name}}` replaced by the recipient's variables (provisional syntax)."""
    if not variables:
        return req

    def plain(match: re.Match) -> str:
        return variables.get(match.group(1), match.group(0))

    def html(match: re.Match) -> str:
        value = variables.get(match.group(1))
        return escape(value) if value is not None else match.group(0)

    return replace(req, subject=_VARIABLE.sub(plain, req.subject), message=_VARIABLE.sub(html, req.message),
                   text=_VARIABLE.sub(plain, req.text))


def _batch_hash(reqs: list[SendRequest]) -> str:
    payload = [{k: v for k, v in vars(r).items() if k not in ("idempotency_key", "attachments")} for r in reqs]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _replay(app: App, key: str, request_hash: str) -> list[SendLog] | None:
    entry = IdempotencyKey.objects.filter(app=app, key=key).first()
    if entry is None:
        return None
    if timezone.now() - entry.created_at > IDEMPOTENCY_TTL:
        entry.delete()  # expired: the key may name a new request
        return None
    if entry.request_hash != request_hash or entry.batch_ids is None:
        raise Refusal("idempotency_conflict", "this Idempotency-Key was used with a different payload")
    rows = SendLog.objects.in_bulk(entry.batch_ids)
    return [rows[pk] for pk in entry.batch_ids if pk in rows]


def _check_suppressed(app: App, all_fields: list[dict]) -> list[tuple[int, Refusal]]:
    """The messages with a suppressed recipient: one query per 500 addresses."""
    by_address: dict[str, list[int]] = {}
    for index, fields in enumerate(all_fields):
        for addr in envelope_addresses(fields):
            by_address.setdefault(addr.lower(), []).append(index)
    addresses = sorted(by_address)
    hits: dict[int, list[str]] = {}
    for start in range(0, len(addresses), 500):
        for addr in queries.suppressed(app.pk, set(addresses[start:start + 500])):
            for index in by_address[addr]:
                hits.setdefault(index, []).append(addr)
    return [(i, Refusal("recipient_suppressed", f"suppressed (bounce, complaint or unsubscribe): {', '.join(sorted(set(a)))}"))
            for i, a in sorted(hits.items())]


def _new_rows(common: dict, all_fields: list[dict], default_from: str) -> list[SendLog]:
    """The batch's SendLog instances, built from positional values: Model(**kwargs) resolves
    each of ~40 fields' default per row, a quarter of a 500-message batch's accept time."""
    concrete = SendLog._meta.concrete_fields
    template = {f.attname: f.get_default() for f in concrete}
    fresh = [f.attname for f in concrete if isinstance(template[f.attname], (dict, list))]  # never shared
    template.update(common)
    rows = []
    for fields in all_fields:
        fields.pop("attachments")
        fields["from_name"] = fields["from_name"] or default_from
        values = {**template, **fields, "message_id": make_msgid(domain=settings.HUB_DOMAIN)}
        for name in fresh:
            values[name] = type(values[name])()
        rows.append(SendLog(*[values[f.attname] for f in concrete]))
    return rows


def accept_batch(app: App, reqs: list[SendRequest], idempotency_key: str = "",
                 client_ip: str | None = None) -> BatchResult:
    """Validate and queue every message of a batch in one transaction, or none; raises
    BatchRefused (per message) or Refusal (the whole batch: quota, account, size, key)."""
    if not reqs:
        raise Refusal("invalid_field", "the batch holds no message")
    if len(reqs) > settings.HUB_BATCH_MAX_MESSAGES:
        raise Refusal("too_large", f"at most {settings.HUB_BATCH_MAX_MESSAGES} messages per batch")
    key = idempotency_key.strip()
    if len(key) > 255 or any(c in key for c in "\r\n\0"):
        raise Refusal("invalid_field", "Idempotency-Key: at most 255 characters on one line")
    request_hash = _batch_hash(reqs) if key else ""
    if key and (earlier := _replay(app, key, request_hash)) is not None:
        return BatchResult(earlier, replayed=True)
    sender = primary_sender(app)
    all_fields: list[dict] = []
    refused: list[tuple[int, Refusal]] = []
    for index, req in enumerate(reqs):
        try:
            all_fields.append(validate(req))
        except Refusal as refusal:
            refused.append((index, refusal))
            all_fields.append({})
    if refused:
        raise BatchRefused(refused)
    refused = _check_suppressed(app, all_fields)
    if refused:
        raise BatchRefused(refused)
    terms = quota.terms_of(app)
    default_from = app.from_name or app.name
    now = timezone.now()  # one instant for the batch (and one database value to prepare)
    common = {"app_id": app.pk, "from_email": sender, "client_ip": client_ip, "idempotency_key": key,
              "created_at": now, "attachment_count": 0}
    rows = _new_rows(common, all_fields, default_from)
    charged_on = quota.day_of(rows[0].created_at)
    quota.check_terms(terms, charged_on)
    if terms.metered:
        for row, fields in zip(rows, all_fields, strict=True):
            row.quota_charged = recipient_count(fields)
    try:
        with transaction.atomic():
            if terms.metered:
                total = sum(row.quota_charged for row in rows)
                if quota.reserve(app.account_id, total, charged_on) != total:
                    # Became unlimited meanwhile: took nothing.
                    for row in rows:
                        row.quota_charged = 0
            # Values prepared inside the transaction here (unlike a single send): computing
            # them once per distinct value makes that cheaper than holding 500 prepared rows.
            queries.insert_many(rows)
            if key:
                IdempotencyKey.objects.create(app=app, key=key, request_hash=request_hash, log=rows[0],
                                              batch_ids=[row.pk for row in rows])
    except IntegrityError:
        # The same key arrived twice at once and the other request won: answer as it did.
        earlier = _replay(app, key, request_hash) if key else None
        if earlier is None:
            raise
        return BatchResult(earlier, replayed=True)
    wake_workers()  # after the commit: a drain must be able to see the rows
    return BatchResult(rows)
