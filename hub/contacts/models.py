"""Contact lists, their contacts and file imports (V28 chapter 4).

Scale: a list may hold millions of contacts. So the list keeps its size in a counter
(`contact_count`, changed in the same transaction as every insert/delete, never COUNT(*)),
and Contact has exactly two secondary indexes:
- unique (mail_list, email): duplicate detection on insert, "one address" lookups, and (its
  leading column) every `mail_list = ?` filter;
- (mail_list, id): cursor paging (`id > last ORDER BY id LIMIT n`) and chunked deletes.
Each further index would slow every import row; keyword search scans one list's rows (an
index cannot serve `LIKE '%kw%'`), which stays under a second at a million rows.
Writes go through hub.contacts.services, which keep the counter exact."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub.models import Account

MAX_NAME = 200  # fullname (same bound as the core's display names, HUB_MAX_NAME_CHARS)
MAX_PHONE = 50
MAX_AREA = 100
MAX_VAR = 255
VAR_FIELDS = tuple(f"var{i}" for i in range(1, 11))


class MailList(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="mail_lists",
                                verbose_name=_("account"))
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    contact_count = models.BigIntegerField(_("contacts"), default=0, editable=False)
    importing = models.BooleanField(_("import in progress"), default=False, editable=False)
    double_opt_in = models.BooleanField(
        _("double opt-in"), default=False,
        help_text=_("New subscribers get a confirmation mail and count as subscribed only after they confirm."))
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("contact list")
        verbose_name_plural = _("contact lists")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    class Sex(models.TextChoices):
        NONE = "", _("unknown")
        MALE = "M", _("male")
        FEMALE = "F", _("female")

    # Denormalized copy of mail_list.account (tenancy checks without a join). No index and
    # no constraint of its own: the list carries both, and InnoDB would add an index for a
    # constraint, which every import row would pay for.
    account = models.ForeignKey(Account, on_delete=models.DO_NOTHING, db_index=False, db_constraint=False,
                                related_name="+", verbose_name=_("account"))
    # Indexed by the unique (mail_list, email) constraint, whose leading column it is.
    mail_list = models.ForeignKey(MailList, on_delete=models.CASCADE, db_index=False, related_name="contacts",
                                  verbose_name=_("contact list"))
    email = models.CharField(_("email"), max_length=254)  # normalized: see services.normalize_email
    fullname = models.CharField(_("name"), max_length=MAX_NAME, blank=True)
    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices, blank=True, default="")
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    phone = models.CharField(_("phone"), max_length=MAX_PHONE, blank=True)
    area = models.CharField(_("area"), max_length=MAX_AREA, blank=True)
    var1 = models.CharField("var1", max_length=MAX_VAR, blank=True)
    var2 = models.CharField("var2", max_length=MAX_VAR, blank=True)
    var3 = models.CharField("var3", max_length=MAX_VAR, blank=True)
    var4 = models.CharField("var4", max_length=MAX_VAR, blank=True)
    var5 = models.CharField("var5", max_length=MAX_VAR, blank=True)
    var6 = models.CharField("var6", max_length=MAX_VAR, blank=True)
    var7 = models.CharField("var7", max_length=MAX_VAR, blank=True)
    var8 = models.CharField("var8", max_length=MAX_VAR, blank=True)
    var9 = models.CharField("var9", max_length=MAX_VAR, blank=True)
    var10 = models.CharField("var10", max_length=MAX_VAR, blank=True)
    subscribed = models.BooleanField(_("subscribed"), default=True)
    unsubscribed_at = models.DateTimeField(_("unsubscribed at"), null=True, blank=True)
    # Double opt-in: added, confirmation mail sent, not confirmed yet (subscribed is False).
    pending = models.BooleanField(_("awaiting confirmation"), default=False)
    created_at = models.DateTimeField(_("added"), default=timezone.now)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [models.UniqueConstraint(fields=["mail_list", "email"], name="contacts_contact_list_email")]
        indexes = [models.Index(fields=["mail_list", "id"], name="contacts_contact_list_id"),
                   # Keyword search scans this narrow index instead of the rows (store.keyword_ids).
                   models.Index(fields=["mail_list", "email", "fullname"], name="contacts_contact_search")]

    def __str__(self) -> str:
        return self.email


class ImportJob(models.Model):
    class Status(models.IntegerChoices):
        # V28 (a)8 codes: 1 success, -1/-2/-3 failure (the reference leaves the sub-reasons
        # open; ours are below). 0 and 2 are ours: waiting for a worker, running.
        QUEUED = 0, _("queued")
        RUNNING = 2, _("running")
        DONE = 1, _("done")
        FAILED_FILE = -1, _("failed: the file could not be read")
        FAILED_LIST = -2, _("failed: the list is gone")
        FAILED_INTERRUPTED = -3, _("failed: interrupted or internal error")

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+", verbose_name=_("account"))
    mail_list = models.ForeignKey(MailList, on_delete=models.CASCADE, related_name="imports",
                                  verbose_name=_("contact list"))
    filename = models.CharField(_("file name"), max_length=255)
    stored_name = models.CharField(_("stored file"), max_length=255, editable=False)
    size = models.BigIntegerField(_("size (bytes)"), default=0)
    file_format = models.CharField(_("format"), max_length=10, blank=True)  # "text" or "xlsx"
    encoding = models.CharField(_("encoding"), max_length=20, blank=True)
    status = models.SmallIntegerField(_("status"), choices=Status.choices, default=Status.QUEUED)
    count_all = models.BigIntegerField(_("rows"), default=0)
    count_invalid = models.BigIntegerField(_("invalid"), default=0)
    count_duplicate = models.BigIntegerField(_("duplicates"), default=0)
    count_imported = models.BigIntegerField(_("imported"), default=0)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    error = models.TextField(_("error"), blank=True)
    invalid_sample = models.TextField(_("first invalid rows"), blank=True)
    # Checkpoint, committed with each chunk's rows: the byte offset after the last row of the
    # chunk (text) or the sheet row number (XLSX). A resumed run continues from here.
    checkpoint = models.BigIntegerField(default=0, editable=False)
    # Fencing token of the run allowed to write; a requeue gives a new one, so a run that was
    # presumed dead but is still going cannot commit another chunk.
    run_token = models.CharField(max_length=32, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(_("last progress"), null=True, blank=True)
    resumes = models.PositiveSmallIntegerField(_("resumed after interruption"), default=0)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        indexes = [models.Index(fields=["status"], name="contacts_import_status")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.filename}"

    @property
    def finished(self) -> bool:
        return self.status not in self.ACTIVE
