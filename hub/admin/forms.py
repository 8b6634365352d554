"""Forms of the back office: the SMTP server form with its write-only password, and the
small forms behind the custom admin actions (test email, secret rotation)."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _
from unfold.widgets import (
    UnfoldAdminEmailInputWidget,
    UnfoldAdminPasswordWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanSwitchWidget,
)

from ..models import SmtpServer
from ..sending import Refusal, parse_address_list

# A direct server's EHLO name.
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class SmtpServerAdminForm(forms.ModelForm):
    """The password is write-only: the form never renders it (not even encrypted), a blank
    field keeps the stored one, and removing it takes an explicit tick."""

    password = forms.CharField(
        label=_("Password"),
        required=False,
        strip=False,
        widget=UnfoldAdminPasswordWidget(attrs={"autocomplete": "new-password"}, render_value=False),
    )
    clear_password = forms.BooleanField(
        label=_("Remove the stored password"), required=False, widget=UnfoldBooleanSwitchWidget,
        help_text=_("For a server that accepts mail without login."),
    )

    class Meta:
        model = SmtpServer
        fields = [
            "name", "kind", "host", "port", "security", "verify_tls", "username", "password", "clear_password",
            "from_email", "verp_return_path", "enabled", "timeout", "limit_per_minute", "limit_per_hour", "limit_per_day",
            "max_connections", "helo_name", "source_address",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        has_password = bool(self.instance.pk and self.instance.password_encrypted)
        if has_password:
            self.fields["password"].help_text = _(
                "A password is stored (encrypted). Leave blank to keep it; type a new one to replace it."
            )
        else:
            self.fields["password"].help_text = _("No password is stored. Leave blank for a server without login.")
            # Nothing to remove.
            self.fields.pop("clear_password", None)
        if "max_connections" in self.fields:  # absent from a view-only form
            self.fields["max_connections"].required = False
        for name in ("kind", "port"):  # a form posted by a script written before direct servers
            if name in self.fields:
                self.fields[name].required = False

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or SmtpServer.Kind.RELAY

    def clean_port(self) -> int:
        value = self.cleaned_data.get("port")
        return value if value is not None else SmtpServer._meta.get_field("port").default

    def clean_helo_name(self) -> str:
        value = (self.cleaned_data.get("helo_name") or "").strip().rstrip(".")
        if value and not _HOSTNAME.match(value):
            raise forms.ValidationError(_("Enter a host name (letters, digits, hyphens and dots)."))
        return value

    def clean_max_connections(self) -> int:
        # Left empty (a form posted by a script written before the field existed): the default.
        value = self.cleaned_data.get("max_connections")
        return value if value is not None else SmtpServer._meta.get_field("max_connections").default

    def clean(self) -> dict:
        data = super().clean()
        # What each kind needs (the model's clean() says it too; here it lands on the field).
        if data.get("kind") == SmtpServer.Kind.DIRECT:
            if not data.get("from_email") and "from_email" not in self.errors:
                self.add_error("from_email", _("A direct server needs a sender address."))
        elif not data.get("host") and "host" not in self.errors:
            self.add_error("host", _("A relay server needs a host."))
        if data.get("password") and data.get("clear_password"):
            self.add_error("clear_password", _("Either type a new password or remove it, not both."))
        if any(ch in (data.get("password") or "") for ch in "\r\n\x00"):
            self.add_error("password", _("The password cannot contain line breaks."))
        # The stored password goes only where it went before: whoever points the server
        # somewhere else (or drops TLS) must type the password again, or they could collect
        # it with a server of their own.
        moved = {"host", "port", "security", "verify_tls", "username"} & set(self.changed_data)
        if (moved and self.instance.pk and self.instance.password_encrypted
                and not data.get("password") and not data.get("clear_password")):
            self.add_error("password", _("You changed where this server connects: type the password again "
                                         "(or remove it)."))
        return data

    def save(self, commit: bool = True) -> SmtpServer:
        server = super().save(commit=False)
        if self.cleaned_data.get("password"):
            server.set_password(self.cleaned_data["password"])
        elif self.cleaned_data.get("clear_password"):
            server.set_password("")
        if commit:
            server.save()
            self._save_m2m()
        return server


def _one_address(value: str) -> str:
    try:
        addresses = parse_address_list("to", value)
    except Refusal as refusal:
        raise forms.ValidationError(refusal.detail or refusal.msg) from refusal
    if len(addresses) != 1:
        raise forms.ValidationError(_("Enter one email address."))
    return str(addresses[0])


class TestEmailForm(forms.Form):
    """Where a test email goes. The default subject and body say what it is."""

    to = forms.CharField(
        label=_("Send to"), max_length=254,
        widget=UnfoldAdminEmailInputWidget(attrs={"placeholder": "you@example.com", "autofocus": True}),
    )
    subject = forms.CharField(label=_("Subject"), max_length=200, widget=UnfoldAdminTextInputWidget)
    message = forms.CharField(label=_("HTML body"), widget=UnfoldAdminTextareaWidget(attrs={"rows": 4}))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["subject"].initial = _("SMTP Hub test email")
        self.fields["message"].initial = _("<p>This is a test email from <b>SMTP Hub</b>.</p>")

    def clean_to(self) -> str:
        return _one_address(self.cleaned_data["to"])


# Grace periods offered when rotating an AppSecret (seconds).
GRACE_CHOICES = [
    (0, _("None: the old secret stops working at once")),
    (3600, _("1 hour")),
    (86400, _("24 hours")),
    (7 * 86400, _("7 days")),
]


class RotateSecretForm(forms.Form):
    grace_seconds = forms.TypedChoiceField(
        label=_("Old secret keeps working for"), choices=GRACE_CHOICES, coerce=int, initial=0,
        widget=UnfoldAdminSelectWidget,
    )

    def __init__(self, *args, with_grace: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not with_grace:
            # This version of the model has no grace period: rotation is immediate.
            self.fields.pop("grace_seconds")
