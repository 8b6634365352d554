"""Each account's suppression policy (which failures put an address on its suppression
list) and the soft bounces counted toward the "N in M days" rule. The list itself is
Suppression (sendlog.py); the rules applying them live in hub.delivery.suppression."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .accounts import Account


def default_soft_bounce_limit() -> int:
    return settings.HUB_SOFT_BOUNCE_LIMIT


def default_soft_bounce_days() -> int:
    return settings.HUB_SOFT_BOUNCE_DAYS


class SuppressionPolicy(models.Model):
    """When an address goes on the account's suppression list. An account without a row
    follows the settings' defaults (HUB_SOFT_BOUNCE_LIMIT, HUB_SOFT_BOUNCE_DAYS; the three
    switches on)."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, primary_key=True,
                                   related_name="suppression_policy", verbose_name=_("account"))
    hard_bounces = models.BooleanField(_("suppress after a hard bounce"), default=True)
    complaints = models.BooleanField(_("suppress after a complaint"), default=True)
    unsubscribes = models.BooleanField(
        _("suppress after an unsubscribe"), default=True,
        help_text=_("Stops campaign mail to the address from every list of the account; transactional mail "
                    "still goes out."))
    soft_bounce_limit = models.PositiveIntegerField(
        _("soft bounces before suppression"), default=default_soft_bounce_limit,
        validators=[MaxValueValidator(1000)],
        help_text=_("Suppress an address after this many soft bounces (mailbox full, refused by the recipient) "
                    "within the window below. 0 = never."))
    soft_bounce_days = models.PositiveIntegerField(
        _("soft bounce window (days)"), default=default_soft_bounce_days,
        validators=[MinValueValidator(1), MaxValueValidator(365)])

    class Meta:
        verbose_name = _("suppression policy")
        verbose_name_plural = _("suppression policies")

    def __str__(self) -> str:
        return str(self.account)


class SoftBounce(models.Model):
    """One soft bounce of one address, kept for the account's window (older ones of that
    address are deleted when its next one is counted, or when its entry is removed)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    email = models.CharField(max_length=254)
    failure_type = models.PositiveSmallIntegerField(null=True, blank=True)
    log_id = models.BigIntegerField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["account", "email", "at"], name="softbounce_account_email")]
