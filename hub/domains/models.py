"""Sending domains (V28 7.1-7.6), their DKIM keys, and mailboxes (7.7-7.10).

A domain belongs to one account; its name is unique across the hub (the DNS records that
prove it, the SPF include and the MX host, are the same for every account, and one selector
can publish one key). Private keys are encrypted at rest with hub.crypto, as SMTP passwords
are; mailbox passwords are one-way hashes (Django's password hashers)."""

from __future__ import annotations

from django.contrib.auth.hashers import check_password, make_password
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub import crypto
from hub.models import Account, App


class Domain(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Not verified")
        VERIFIED = "verified", _("Verified")
        # Verified once, and its SPF or MX record no longer checks out: flagged, still signs.
        BROKEN = "broken", _("Records broken")

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="domains", verbose_name=_("account"))
    # Lower case, IDNA (punycode) for internationalized names: what DNS and From carry.
    name = models.CharField(_("domain"), max_length=253, unique=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    spf_ok = models.BooleanField(_("SPF ok"), default=False)
    mx_ok = models.BooleanField(_("MX ok"), default=False)
    dkim_ok = models.BooleanField(_("DKIM ok"), default=False)
    check_detail = models.TextField(_("last check"), blank=True)
    checked_at = models.DateTimeField(_("checked"), null=True, blank=True)
    verified_at = models.DateTimeField(_("verified"), null=True, blank=True)
    broken_since = models.DateTimeField(_("broken since"), null=True, blank=True)
    created_at = models.DateTimeField(_("added"), default=timezone.now)

    class Meta:
        verbose_name = _("sending domain")
        verbose_name_plural = _("sending domains")
        indexes = [models.Index(fields=["account", "name"], name="domains_domain_account_name"),
                   models.Index(fields=["checked_at"], name="domains_domain_checked")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_verified(self) -> bool:
        """Passed verification and was not deleted: may sign mail and hold mailboxes. A
        broken domain stays verified (flagged) until its records are fixed or it is deleted."""
        return self.status in (self.Status.VERIFIED, self.Status.BROKEN)


class DkimKey(models.Model):
    class Algorithm(models.TextChoices):
        RSA = "rsa-2048", _("RSA 2048")
        ED25519 = "ed25519", _("Ed25519")

    class State(models.TextChoices):
        ACTIVE = "active", _("Active (signs)")
        NEXT = "next", _("Next (publish, then activate)")
        RETIRED = "retired", _("Retired")

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="keys", verbose_name=_("domain"))
    selector = models.CharField(_("selector"), max_length=63)
    algorithm = models.CharField(_("algorithm"), max_length=10, choices=Algorithm.choices, default=Algorithm.RSA)
    private_key_encrypted = models.TextField(_("private key (encrypted)"), editable=False)
    public_key = models.TextField(_("public key"), editable=False)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.ACTIVE)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    activated_at = models.DateTimeField(_("activated"), null=True, blank=True)
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True)

    class Meta:
        verbose_name = _("DKIM key")
        verbose_name_plural = _("DKIM keys")
        constraints = [models.UniqueConstraint(fields=("domain", "selector"), name="domains_dkimkey_selector")]

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.domain_id and self.domain.name}"

    def set_private_key(self, text: str) -> None:
        self.private_key_encrypted = crypto.encrypt(text)

    def get_private_key(self) -> str:
        """The plaintext key (PEM for RSA, base64 seed for Ed25519); raises crypto.DecryptionError."""
        return crypto.decrypt(self.private_key_encrypted)

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain.name}"

    @property
    def record(self) -> str:
        """The TXT value to publish at dns_name."""
        kind = "ed25519" if self.algorithm == self.Algorithm.ED25519 else "rsa"
        return f"v=DKIM1; k={kind}; p={self.public_key}"


class Mailbox(models.Model):
    """A sender account under a verified domain: SMTP submission credentials (AUTH as the
    full address) that may send only From that address, through `app`."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="mailboxes", verbose_name=_("domain"))
    local_part = models.CharField(_("name"), max_length=64)
    address = models.CharField(_("mailbox"), max_length=254, unique=True)
    password_hash = models.CharField(_("password hash"), max_length=200, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="+", verbose_name=_("app"),
                            help_text=_("Its mail goes through this app of the account (servers, logs, limits)."))
    created_at = models.DateTimeField(_("added"), default=timezone.now)
    password_changed_at = models.DateTimeField(_("password changed"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("mailbox")
        verbose_name_plural = _("mailboxes")
        indexes = [models.Index(fields=["domain", "id"], name="domains_mailbox_domain_id")]

    def __str__(self) -> str:
        return self.address

    def set_password(self, raw: str) -> None:
        self.password_hash = make_password(raw)
        self.password_changed_at = timezone.now()

    def check_password(self, raw: str) -> bool:
        return check_password(raw, self.password_hash)
