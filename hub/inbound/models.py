"""What came back: the bounce and complaint reports the hub received (by its inbound SMTP
listener or from a polled IMAP mailbox), and the IMAP bounce mailboxes it polls."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub import crypto
from hub.models import Account, FailureType


class BounceMailbox(models.Model):
    """A mailbox the hub polls over IMAP for bounces (providers that return bounces to the
    From address instead of the envelope sender). Reports found in it only ever touch its
    own account's messages and recipients."""

    class Security(models.TextChoices):
        SSL = "ssl", _("SSL/TLS (implicit)")
        STARTTLS = "starttls", _("STARTTLS")
        NONE = "none", _("None (plain text)")

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="bounce_mailboxes",
                                verbose_name=_("account"))
    name = models.CharField(_("name"), max_length=100)
    host = models.CharField(_("IMAP host"), max_length=255)
    port = models.PositiveIntegerField(_("port"), default=993, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    security = models.CharField(_("security"), max_length=10, choices=Security.choices, default=Security.SSL)
    verify_tls = models.BooleanField(_("verify TLS certificate"), default=True)
    username = models.CharField(_("username"), max_length=255)
    password_encrypted = models.TextField(_("password (encrypted)"), blank=True, editable=False)
    folder = models.CharField(_("folder"), max_length=200, default="INBOX")
    enabled = models.BooleanField(_("enabled"), default=True)
    # IMAP UIDs already read: only newer ones are fetched (reset when UIDVALIDITY changes).
    uid_validity = models.BigIntegerField(default=0, editable=False)
    last_uid = models.BigIntegerField(default=0, editable=False)
    last_polled_at = models.DateTimeField(_("last polled"), null=True, blank=True, editable=False)
    last_error = models.TextField(_("last error"), blank=True, editable=False)

    class Meta:
        verbose_name = _("bounce mailbox (IMAP)")
        verbose_name_plural = _("bounce mailboxes (IMAP)")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.username}@{self.host})"

    def set_password(self, plaintext: str) -> None:
        self.password_encrypted = crypto.encrypt(plaintext) if plaintext else ""

    def get_password(self) -> str:
        return crypto.decrypt(self.password_encrypted) if self.password_encrypted else ""


class Report(models.Model):
    """One recipient's bounce, delay or complaint as a report told it, matched to the
    message it was about (or not: unmatched reports are kept for the admin, change nothing)."""

    class Kind(models.TextChoices):
        BOUNCE = "bounce", _("Bounce")
        DELAY = "delay", _("Delay (no action)")
        COMPLAINT = "complaint", _("Complaint")

    class Source(models.TextChoices):
        SMTP = "smtp", _("Inbound SMTP (VERP)")
        IMAP = "imap", _("IMAP mailbox")

    account = models.ForeignKey(Account, on_delete=models.CASCADE, null=True, blank=True, related_name="+",
                                verbose_name=_("account"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    email = models.CharField(_("recipient"), max_length=254, blank=True)
    log_id = models.BigIntegerField(_("send log"), null=True, blank=True)
    matched_by = models.CharField(_("matched by"), max_length=20, blank=True)  # verp / header / message-id
    failure_type = models.PositiveSmallIntegerField(_("failure type"), null=True, blank=True,
                                                    choices=FailureType.choices)
    hard = models.BooleanField(_("hard bounce"), default=False)
    status = models.CharField(_("status code"), max_length=20, blank=True)
    diagnostic = models.TextField(_("diagnostic"), blank=True)
    feedback_type = models.CharField(_("feedback type"), max_length=40, blank=True)
    mailbox = models.ForeignKey(BounceMailbox, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                verbose_name=_("bounce mailbox"))
    received_at = models.DateTimeField(_("received"), default=timezone.now)

    class Meta:
        verbose_name = _("bounce or complaint report")
        verbose_name_plural = _("bounce and complaint reports")
        ordering = ["-id"]
        indexes = [models.Index(fields=["account", "received_at"], name="inbound_report_account")]
        constraints = [
            # The same report delivered twice (a retried DSN, the IMAP copy of a VERP bounce)
            # counts once. Not a partial index (MariaDB has none): reports matched to no
            # message have a NULL log_id, and NULLs never collide in a unique index.
            models.UniqueConstraint(fields=["log_id", "email", "kind"], name="inbound_report_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.email}"
