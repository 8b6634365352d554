"""Event webhooks: an account's endpoints, the outbox of events waiting for each, and the
log of every POST made.

`Event` is the transactional outbox: one row per (event, subscribed endpoint), written by
the hub.events receiver inside the emitter's transaction, so it exists exactly when the
state change it tells of was committed. The drain task (outbox.py) claims due rows, POSTs
them in batches and records the outcome; `Attempt` is one POST (the delivery log)."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub import crypto
from hub.events import Kind
from hub.models import Account

KINDS = tuple(kind.value for kind in Kind)
KIND_CHOICES = [(kind.value, kind.value) for kind in Kind]


class Endpoint(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_endpoints",
                                verbose_name=_("account"))
    url = models.CharField(_("URL"), max_length=2000, help_text=_("http:// or https://; receives a POST per batch."))
    description = models.CharField(_("description"), max_length=200, blank=True)
    # Comma-separated hub.events kinds, e.g. "sent,failed" (validated by targets.parse_kinds).
    kinds = models.CharField(_("events"), max_length=200)
    enabled = models.BooleanField(_("enabled"), default=True)
    # The signing secret, encrypted at rest (hub.crypto): signing needs the plaintext.
    secret_encrypted = models.TextField(editable=False)
    # Circuit breaker: after a failed POST the endpoint is not tried before this time.
    retry_at = models.DateTimeField(_("paused until"), null=True, blank=True, editable=False)
    failures = models.PositiveIntegerField(_("consecutive failures"), default=0, editable=False)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True, editable=False)
    last_failure_at = models.DateTimeField(_("last failure"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} {self.url[:80]}"

    @property
    def kind_list(self) -> list[str]:
        return [k for k in self.kinds.split(",") if k]

    def set_secret(self, plaintext: str) -> None:
        self.secret_encrypted = crypto.encrypt(plaintext)

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)


class Attempt(models.Model):
    """One POST to an endpoint (one batch of events): the delivery log."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="attempts",
                                 verbose_name=_("endpoint"))
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", verbose_name=_("account"))
    delivery_id = models.CharField(_("delivery id"), max_length=32, help_text=_("sent as X-Hub-Delivery"))
    started_at = models.DateTimeField(_("started"), default=timezone.now, db_index=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    event_count = models.PositiveIntegerField(_("events"), default=0)
    ok = models.BooleanField(_("delivered"), default=False)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    response = models.TextField(_("response (truncated)"), blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} {self.status_code or self.error[:40]}"


class Event(models.Model):
    """One event waiting for (or delivered to, or failed at) one endpoint."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        SENDING = "sending", _("Sending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    # No database constraint on these two: the row is written inside the delivery engine's
    # transaction from a snapshot up to HUB_WEBHOOK_CACHE_SECONDS old; an endpoint deleted
    # meanwhile by another process must not make that transaction fail at COMMIT (SQLite
    # checks foreign keys there) and so hold up the mail. Such an orphan is never delivered
    # (the drain joins the endpoint), expires and is purged (outbox.sweep).
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="events",
                                 verbose_name=_("endpoint"), db_constraint=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", verbose_name=_("account"),
                                db_constraint=False)
    kind = models.CharField(_("event"), max_length=20, choices=KIND_CHOICES)
    email = models.CharField(_("recipient"), max_length=320)
    occurred_at = models.DateTimeField(_("occurred"))
    app_id = models.BigIntegerField(_("app"), null=True, blank=True)
    log_id = models.BigIntegerField(_("send log"), null=True, blank=True)
    campaign_id = models.BigIntegerField(_("campaign"), null=True, blank=True)
    contact_id = models.BigIntegerField(_("contact"), null=True, blank=True)
    data = models.JSONField(_("data"), default=dict, encoder=DjangoJSONEncoder)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    last_attempt = models.ForeignKey(Attempt, on_delete=models.SET_NULL, null=True, blank=True, related_name="events",
                                     verbose_name=_("last attempt"))
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-id"]
        indexes = [
            # The drain: an endpoint's due events, oldest first.
            models.Index(fields=["status", "endpoint", "next_attempt_at"], name="webhooks_due"),
            models.Index(fields=["account", "endpoint", "-id"], name="webhooks_account_log"),
            models.Index(fields=["created_at"], name="webhooks_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.email}"

    def payload(self) -> dict:
        """What the receiver gets for this event (docs/webhooks.md lists every kind's data)."""
        return {"id": self.pk, "type": self.kind, "occurred_at": self.occurred_at.isoformat(),
                "email": self.email, "customer_id": self.account_id, "app_id": self.app_id, "log_id": self.log_id,
                "campaign_id": self.campaign_id, "contact_id": self.contact_id, "data": self.data}


class Wakeup(models.Model):
    """One row: set when a drain task has been asked for and not yet started (the same
    protocol as hub.models.DeliveryWakeup for mail, see outbox.wake)."""

    requested_at = models.DateTimeField(null=True, blank=True)
