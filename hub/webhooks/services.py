"""Webhook endpoints and their delivery log, per account: the rules both the native API
and tests call. Every query is filtered by the acting account; another account's ids are
"not found", with nothing written."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from hub.models import Account

from . import outbox, signing
from .models import Attempt, Endpoint, Event
from .targets import TargetError, parse_kinds, validate_url

MAX_RESEND = 500


class WebhookError(Exception):
    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.http_status = code, str(message), http_status


def _checked_url(url: str) -> str:
    try:
        return validate_url(url)
    except TargetError as exc:
        raise WebhookError(exc.code, exc.message) from None


def _checked_kinds(kinds) -> str:
    try:
        return parse_kinds(kinds)
    except TargetError as exc:
        raise WebhookError(exc.code, exc.message) from None


def _checked_secret(secret: str | None) -> str:
    if secret is None or secret == "":
        return signing.new_secret()
    if not (signing.SECRET_MIN <= len(secret) <= signing.SECRET_MAX) or not secret.isascii() or not secret.isprintable():
        raise WebhookError("secret_error", _("the secret must be %(min)s to %(max)s printable ASCII characters")
                           % {"min": signing.SECRET_MIN, "max": signing.SECRET_MAX})
    return secret


@dataclass
class Created:
    endpoint: Endpoint
    secret: str  # shown once, on creation and rotation


def list_endpoints(account: Account) -> list[Endpoint]:
    return list(Endpoint.objects.filter(account=account).order_by("id"))


def get_endpoint(account: Account, endpoint_id: int) -> Endpoint:
    endpoint = Endpoint.objects.filter(pk=endpoint_id, account=account).first()
    if endpoint is None:
        raise WebhookError("not_found", _("webhook not found"), 404)
    return endpoint


def create_endpoint(account: Account, url: str, kinds, description: str = "", enabled: bool = True,
                    secret: str | None = None) -> Created:
    url, kinds, secret = _checked_url(url), _checked_kinds(kinds), _checked_secret(secret)
    with transaction.atomic():
        # Counted under the account's row lock (MariaDB): two concurrent creations cannot pass.
        Account.objects.select_for_update().filter(pk=account.pk).first()
        if Endpoint.objects.filter(account=account).count() >= settings.HUB_WEBHOOK_MAX_ENDPOINTS:
            raise WebhookError("too_many", _("at most %(n)s webhooks per account")
                               % {"n": settings.HUB_WEBHOOK_MAX_ENDPOINTS}, 409)
        endpoint = Endpoint(account=account, url=url, kinds=kinds, description=description[:200], enabled=enabled)
        endpoint.set_secret(secret)
        endpoint.save()
    return Created(endpoint, secret)


def edit_endpoint(account: Account, endpoint_id: int, *, url: str | None = None, kinds=None,
                  description: str | None = None, enabled: bool | None = None) -> Endpoint:
    endpoint = get_endpoint(account, endpoint_id)
    changes = {}
    if url is not None:
        changes["url"] = _checked_url(url)
    if kinds is not None:
        changes["kinds"] = _checked_kinds(kinds)
    if description is not None:
        changes["description"] = description[:200]
    if enabled is not None:
        changes["enabled"] = enabled
        if enabled:
            changes["retry_at"], changes["failures"] = None, 0  # enabled again: try at once
    for name, value in changes.items():
        setattr(endpoint, name, value)
    if changes:
        endpoint.save()  # post_save clears this process's subscription snapshot
    return endpoint


def rotate_secret(account: Account, endpoint_id: int, secret: str | None = None) -> Created:
    endpoint = get_endpoint(account, endpoint_id)
    secret = _checked_secret(secret)
    endpoint.set_secret(secret)
    endpoint.save(update_fields=["secret_encrypted", "updated_at"])
    return Created(endpoint, secret)


def delete_endpoint(account: Account, endpoint_id: int) -> None:
    """Deletes its waiting events and its log too."""
    get_endpoint(account, endpoint_id).delete()


def events_of(account: Account, endpoint_id: int, status: str = "", after_id: int = 0,
              limit: int = 50) -> list[Event]:
    """The endpoint's events, newest first, by cursor (`after_id`: ids below it)."""
    endpoint = get_endpoint(account, endpoint_id)
    qs = Event.objects.filter(account=account, endpoint=endpoint).select_related("last_attempt")
    if status:
        if status not in Event.Status.values:
            raise WebhookError("invalid", _("unknown status %(s)s") % {"s": status[:20]})
        qs = qs.filter(status=status)
    if after_id:
        qs = qs.filter(pk__lt=after_id)
    return list(qs.order_by("-id")[:limit])


def attempts_of(account: Account, endpoint_id: int, after_id: int = 0, limit: int = 50) -> list[Attempt]:
    endpoint = get_endpoint(account, endpoint_id)
    qs = Attempt.objects.filter(account=account, endpoint=endpoint)
    if after_id:
        qs = qs.filter(pk__lt=after_id)
    return list(qs.order_by("-id")[:limit])


def resend(account: Account, endpoint_id: int, event_ids: list[int]) -> int:
    """Queue these events of this endpoint again. All or nothing: an id that is not this
    endpoint's (another account's, or unknown) is "not found" and nothing is queued."""
    if not event_ids:
        raise WebhookError("invalid", _("name at least one event"))
    if len(event_ids) > MAX_RESEND:
        raise WebhookError("too_many", _("at most %(n)s events per call") % {"n": MAX_RESEND})
    endpoint = get_endpoint(account, endpoint_id)
    wanted = set(event_ids)
    events = Event.objects.filter(account=account, endpoint=endpoint, pk__in=wanted)
    if events.count() != len(wanted):
        raise WebhookError("not_found", _("event not found"), 404)
    return outbox.resend(events)
