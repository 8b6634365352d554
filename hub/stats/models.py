"""Statistics (V28 chapter 2): counters kept as outcomes arrive, and the failed recipients.

`Tally` is the one counter table. A row counts the recipients of one account whose outcome
arrived in one local hour, for one campaign row marker (the campaign's template and subject,
see hub.campaigns.dispatch.marker; '' for transactional mail, campaign 0), in one of SLOTS
slots (the SendLog id modulo SLOTS: concurrent deliveries of one campaign update different
rows, so on MariaDB they do not queue behind one row lock until their transaction commits).
Every report is a SUM over the few rows its key prefix selects: a 1M-recipient campaign over
three hours with 2 templates x 3 subjects has at most 3 x 6 x SLOTS = 72 rows.

`Failure` is one row per failed recipient (delivery failure or later bounce), the source of
the failure exports (2.3): indexed by account and day, and by campaign."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from hub.models import Account

SLOTS = 4
TYPES = range(1, 11)  # hub.models.FailureType, V28 (a)6


class Tally(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False,
                                verbose_name=_("account"))
    day = models.DateField(_("day"))  # local day (settings.TIME_ZONE) of the outcome
    hour = models.DateTimeField(_("hour"))  # start of the local hour of the outcome
    campaign_id = models.BigIntegerField(_("campaign"), default=0, db_default=0)  # 0: not a campaign's mail
    marker = models.CharField(_("template and subject"), max_length=100, blank=True, default="")
    slot = models.PositiveSmallIntegerField(default=0)
    sent = models.BigIntegerField(_("sent"), default=0, db_default=0)
    failed = models.BigIntegerField(_("failed"), default=0, db_default=0)
    # Failures by V28 type (a)6: delivery failures and later bounces of that type.
    type_1 = models.BigIntegerField(default=0, db_default=0)
    type_2 = models.BigIntegerField(default=0, db_default=0)
    type_3 = models.BigIntegerField(default=0, db_default=0)
    type_4 = models.BigIntegerField(default=0, db_default=0)
    type_5 = models.BigIntegerField(default=0, db_default=0)
    type_6 = models.BigIntegerField(default=0, db_default=0)
    type_7 = models.BigIntegerField(default=0, db_default=0)
    type_8 = models.BigIntegerField(default=0, db_default=0)
    type_9 = models.BigIntegerField(default=0, db_default=0)
    type_10 = models.BigIntegerField(default=0, db_default=0)
    # Quota units taken for these recipients, and given back (a failed message's refund).
    charged = models.BigIntegerField(_("quota charged"), default=0, db_default=0)
    rebated = models.BigIntegerField(_("quota given back"), default=0, db_default=0)
    # After the outcome: bounces (DSN, VERP) of sent mail, and spam complaints.
    bounced = models.BigIntegerField(_("bounced"), default=0, db_default=0)
    complained = models.BigIntegerField(_("complaints"), default=0, db_default=0)

    class Meta:
        verbose_name = _("statistics counter")
        verbose_name_plural = _("statistics counters")
        constraints = [models.UniqueConstraint(fields=["account", "day", "hour", "campaign_id", "marker", "slot"],
                                               name="stats_tally_key")]
        indexes = [models.Index(fields=["campaign_id", "hour"], name="stats_tally_campaign"),
                   # The dashboard's "today" over every account.
                   models.Index(fields=["day", "campaign_id"], name="stats_tally_day")]


class Failure(models.Model):
    class Kind(models.TextChoices):
        FAILED = "failed", _("Delivery failed")
        BOUNCED = "bounced", _("Bounced")

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False,
                                verbose_name=_("account"))
    day = models.DateField(_("day"))
    at = models.DateTimeField(_("time"))
    campaign_id = models.BigIntegerField(_("campaign"), default=0, db_default=0)
    email = models.CharField(_("email"), max_length=254)
    failure_type = models.PositiveSmallIntegerField(_("failure type"), null=True, blank=True)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.FAILED)
    log_id = models.BigIntegerField(_("send log"), null=True, blank=True)

    class Meta:
        verbose_name = _("failed recipient")
        verbose_name_plural = _("failed recipients")
        indexes = [models.Index(fields=["account", "day", "failure_type"], name="stats_failure_day"),
                   models.Index(fields=["campaign_id", "failure_type"], name="stats_failure_campaign"),
                   # A campaign's de-duplicated exports (2.3.1 / 2.3.2 `type=all`: DISTINCT ... ORDER BY
                   # email) read this index alone, in order: no temporary sort (65 -> 20 ms at 30k
                   # failures). Written per failure only, so cheap to keep.
                   models.Index(fields=["campaign_id", "email", "failure_type", "account"],
                                name="stats_failure_campaign_email")]
