"""Mail templates (V28 chapter 5): the content a campaign sends, its attachments, the result
of its check, and the risky-phrase list the check reads.

A template is small and read often: the dispatcher compiles it once per revision
(`revision` grows on every change of content or attachments; hub.mailtemplates.personalize
caches by (id, revision)). Rendered bodies are never stored per recipient."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub.models import Account

MAX_NAME = 200
MAX_SUBJECT = 255
MAX_SUBJECTS = 20


class Template(models.Model):
    class Encoding(models.TextChoices):
        BASE64 = "base64", "base64"
        QP = "quoted-printable", "quoted-printable"

    class Colour(models.TextChoices):
        NONE = "", _("checking")
        GREEN = "green", _("green")
        YELLOW = "yellow", _("yellow")
        RED = "red", _("red")
        RED_PASS = "red_pass", _("red, passed by an operator")

    # V28 (a)9 `status`: -1 checking, 0 red (refused), 1 passed (green, yellow or red_pass).
    class CheckStatus(models.IntegerChoices):
        CHECKING = -1, _("checking")
        REFUSED = 0, _("refused (red)")
        PASSED = 1, _("passed")

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="mail_templates",
                                verbose_name=_("account"))
    name = models.CharField(_("name"), max_length=MAX_NAME)
    # One or more subjects (V28 input `A|B`); a campaign rotates them.
    subjects = models.JSONField(_("subjects"), default=list)
    html = models.TextField(_("HTML body"))
    # Empty: generated from the HTML when compiled (hub.textify.html_to_text).
    text = models.TextField(_("text body"), blank=True,
                            help_text=_("Leave empty to generate it from the HTML."))
    encoding = models.CharField(_("transfer encoding"), max_length=20, choices=Encoding.choices,
                                default=Encoding.BASE64)
    shared_with_subaccounts = models.BooleanField(
        _("shared with sub-accounts"), default=False,
        help_text=_("A manager account's template that its direct sub-accounts may use in their campaigns "
                    "(read-only for them)."))
    revision = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False)

    # The check (V28 5.3, (a)9), written by hub.mailtemplates.check.
    check_status = models.SmallIntegerField(_("check status"), choices=CheckStatus.choices,
                                            default=CheckStatus.CHECKING, editable=False)
    colour = models.CharField(_("colour"), max_length=10, choices=Colour.choices, blank=True, default="",
                              editable=False)
    size_status = models.SmallIntegerField(_("size status"), default=-1, editable=False)  # -1 computing, 1 done
    size_kb = models.PositiveIntegerField(_("size (KB)"), default=0, editable=False)
    findings = models.JSONField(_("findings"), default=list, blank=True, editable=False)
    checked_at = models.DateTimeField(_("checked"), null=True, blank=True, editable=False)
    red_pass_by = models.CharField(_("red passed by"), max_length=150, blank=True, editable=False)

    class Meta:
        verbose_name = _("template")
        verbose_name_plural = _("templates")
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "id"], name="mailtpl_account_id")]

    def __str__(self) -> str:
        return self.name


class TemplateAttachment(models.Model):
    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="attachments",
                                 verbose_name=_("template"))
    filename = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=255, default="application/octet-stream")
    content = models.BinaryField(_("content"))
    size = models.PositiveIntegerField(_("size (bytes)"))
    created_at = models.DateTimeField(_("added"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("template attachment")
        verbose_name_plural = _("template attachments")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.filename


class RiskyPhrase(models.Model):
    """A phrase that spam filters score (the check marks a template yellow when its subject
    or body contains one). Edited in the admin; matched case-insensitively."""

    phrase = models.CharField(_("phrase"), max_length=100, unique=True)
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("risky phrase")
        verbose_name_plural = _("risky phrases")
        ordering = ["phrase"]

    def __str__(self) -> str:
        return self.phrase
