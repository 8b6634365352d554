"""Who sends: customer accounts (the tenants, with their service period and quota), their
apps (the AppID + AppSecret credentials) and each app's servers in priority order."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import crypto
from .servers import SmtpServer
from .site import validate_networks


class Account(models.Model):
    """A customer: the tenant. Every App belongs to one account, and so does every EDM object
    (lists, contacts, templates, campaigns, domains). A manager account may act for its
    sub-accounts (V28 `user_type=manager`, `customer_id`). The service period and quota live
    here because delivery consumes them for transactional and bulk mail alike."""

    class ServiceStatus(models.TextChoices):
        ENABLED = "enabled", _("Enabled")
        DISABLED = "disabled", _("Disabled")

    class QuotaType(models.TextChoices):
        UNLIMITED = "unlimited", _("Unlimited")
        TOTAL = "all", _("Total quota")
        DAILY = "day", _("Daily quota")

    class SendType(models.TextChoices):
        REMOTE = "remote", _("Relay through SMTP servers")
        LOCAL = "local", _("Direct delivery")

    name = models.CharField(_("name"), max_length=100, unique=True,
                            help_text=_("The customer's user name, shown as `username` in the V28 API."))
    company = models.CharField(_("company"), max_length=200, blank=True)
    contact = models.CharField(_("contact person"), max_length=100, blank=True)
    phone = models.CharField(_("phone"), max_length=50, blank=True)
    mobile = models.CharField(_("mobile"), max_length=50, blank=True)
    email = models.EmailField(_("email"), max_length=254, blank=True)
    im = models.CharField(_("instant messenger"), max_length=100, blank=True)
    address = models.CharField(_("postal address"), max_length=300, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children",
                               verbose_name=_("manager account"),
                               help_text=_("Set on a sub-account: its manager may act for it."))
    is_manager = models.BooleanField(_("manager account"), default=False,
                                     help_text=_("A manager may act for its sub-accounts."))
    # Service and quota (V28 1.2).
    service_status = models.CharField(_("service status"), max_length=10, choices=ServiceStatus.choices,
                                      default=ServiceStatus.ENABLED)
    service_start = models.DateField(_("service start"), null=True, blank=True)
    service_end = models.DateField(_("service end"), null=True, blank=True)
    quota_type = models.CharField(_("quota type"), max_length=10, choices=QuotaType.choices,
                                  default=QuotaType.UNLIMITED)
    send_type = models.CharField(_("send type"), max_length=10, choices=SendType.choices, default=SendType.REMOTE)
    quota_total = models.BigIntegerField(_("quota bought"), default=0)
    # What is left: of the total (`all`), or of today's allowance (`day`, reset each day).
    quota_available = models.BigIntegerField(_("quota available"), default=0)
    quota_day = models.DateField(_("quota day"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # One level, as V28: a manager and its sub-accounts; a sub-account manages nobody.
        errors = {}
        if self.parent_id is not None:
            if self.pk is not None and self.parent_id == self.pk:
                errors["parent"] = _("An account cannot be its own manager.")
            elif not self.parent.is_manager:
                errors["parent"] = _("The manager account must be marked as a manager.")
            elif self.parent.parent_id is not None:
                errors["parent"] = _("A sub-account cannot be a manager account.")
            if self.is_manager:
                errors["is_manager"] = _("A sub-account cannot be a manager account.")
        if self.service_start and self.service_end and self.service_start > self.service_end:
            errors["service_end"] = _("The service cannot end before it starts.")
        if errors:
            raise ValidationError(errors)

    DEFAULT_NAME = "default"

    @classmethod
    def default(cls) -> Account:
        """The account of apps that were given none (migration 0006 made it for the apps
        that existed then): unlimited quota, no service period, so nothing changes for them."""
        account, _created = cls.objects.get_or_create(name=cls.DEFAULT_NAME, defaults={"company": "Default"})
        return account


class QuotaChange(models.Model):
    """The audit trail of an account's quota: every top-up or adjustment made by a person
    (admin action or `hub_account topup`), with the quota available right after it.
    Sends and refunds are not listed here: each SendLog row carries its own charge."""

    class Reason(models.TextChoices):
        TOPUP = "topup", _("Top-up")
        ADJUST = "adjust", _("Adjustment")

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="quota_changes",
                                verbose_name=_("account"))
    delta = models.BigIntegerField(_("change"))
    quota_available_after = models.BigIntegerField(_("quota available after"))
    reason = models.CharField(_("reason"), max_length=10, choices=Reason.choices, default=Reason.TOPUP)
    note = models.CharField(_("note"), max_length=500, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             verbose_name=_("by"))
    created_at = models.DateTimeField(_("time"), auto_now_add=True)

    class Meta:
        verbose_name = _("quota change")
        verbose_name_plural = _("quota changes")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.account_id} {self.delta:+d}"


class App(models.Model):
    """An integrating site, app or server. Its primary key is the public AppID; the
    first migration starts the sequence at 1000, as the original system did."""

    class Type(models.TextChoices):
        SITE = "site", _("Site")
        APP = "app", _("App")
        SERVER = "server", _("Server")

    # Null only until the first save, which gives an app without one the default account
    # (Account.default()): apps made before accounts existed, by scripts or by old clients
    # of `hub_app add`, keep working unchanged.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, null=True, blank=True, related_name="apps",
                                verbose_name=_("account"))
    name = models.CharField(_("name"), max_length=100)
    type = models.CharField(_("type"), max_length=10, choices=Type.choices, default=Type.SITE)
    from_name = models.CharField(_("sender name"), max_length=200, blank=True)
    secret_digest = models.CharField(_("secret digest"), max_length=64, editable=False)
    # After a rotation with a grace period the old secret keeps working until this time.
    previous_secret_digest = models.CharField(max_length=64, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(_("old secret valid until"), null=True, blank=True,
                                                      editable=False)
    servers = models.ManyToManyField(SmtpServer, through="AppServer", related_name="apps",
                                     verbose_name=_("SMTP servers"))
    enabled = models.BooleanField(_("enabled"), default=True)
    allowed_ips = models.TextField(
        _("allowed IPs"), blank=True, validators=[validate_networks],
        help_text=_("Optional. One IP or CIDR per line; when set, only these clients may use this app."),
    )
    rate_limit_per_minute = models.PositiveIntegerField(_("API rate limit per minute"), default=0,
                                                        help_text=_("0 = no limit"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("app")
        verbose_name_plural = _("apps")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} {self.name}"

    @property
    def appid(self) -> int:
        return self.id

    def save(self, *args, **kwargs):
        if self.account_id is None:
            self.account = Account.default()
        super().save(*args, **kwargs)

    def rotate_secret(self, grace_seconds: int = 0) -> str:
        """Give the app a new secret; returns the plaintext, which is never stored. With a
        grace period the old secret keeps working that long, so clients can switch over."""
        secret = crypto.new_app_secret()
        if grace_seconds > 0 and self.secret_digest:
            self.previous_secret_digest = self.secret_digest
            self.previous_secret_expires_at = timezone.now() + timezone.timedelta(seconds=grace_seconds)
        else:
            self.previous_secret_digest, self.previous_secret_expires_at = "", None
        self.secret_digest = crypto.secret_digest(secret)
        return secret

    def check_secret(self, secret: str) -> bool:
        # Both comparisons always run, so timing does not tell which secret matched.
        current = crypto.secret_matches(secret, self.secret_digest)
        previous = crypto.secret_matches(secret, self.previous_secret_digest or "0" * 64)
        in_grace = bool(self.previous_secret_expires_at and timezone.now() < self.previous_secret_expires_at)
        return current or (previous and in_grace)

    def ordered_servers(self) -> list[SmtpServer]:
        """Bound servers, primary first (enabled or not)."""
        return [link.server for link in self.server_links.select_related("server").order_by("priority", "id")]


class AppServer(models.Model):
    """An app's SMTP server with its priority: the lowest number is the primary."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="server_links")
    server = models.ForeignKey(SmtpServer, on_delete=models.PROTECT, related_name="app_links",
                               verbose_name=_("SMTP server"))
    priority = models.PositiveSmallIntegerField(_("priority"), default=0)

    class Meta:
        verbose_name = _("SMTP server of the app")
        verbose_name_plural = _("SMTP servers of the app (first is primary)")
        ordering = ["priority", "id"]
        constraints = [models.UniqueConstraint(fields=["app", "server"], name="uniq_app_server")]

    def __str__(self) -> str:
        return f"{self.app_id} → {self.server}"
