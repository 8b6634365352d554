"""Request and response shapes of the native API (validation here; rules in hub.contacts)."""

from __future__ import annotations

import re

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

VAR_FIELDS = tuple(f"var{i}" for i in range(1, 11))
# NUL and lone surrogates cannot be stored (valid JSON, but no text a database keeps).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class Text(serializers.CharField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if _UNSTORABLE.search(value):
            raise serializers.ValidationError(_("contains characters that cannot be stored"))
        return value


# --- lists -----------------------------------------------------------------------------------

class ListOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    double_opt_in = serializers.BooleanField()
    contact_count = serializers.IntegerField()
    importing = serializers.BooleanField(help_text="an import into this list is running")
    created_at = serializers.DateTimeField()


class ListIn(serializers.Serializer):
    name = Text(max_length=200, allow_blank=False)
    description = Text(max_length=2000, required=False, default="")
    enabled = serializers.BooleanField(required=False, default=True)
    double_opt_in = serializers.BooleanField(required=False, default=False)


class ListPatch(serializers.Serializer):
    name = Text(max_length=200, allow_blank=False, required=False)
    description = Text(max_length=2000, required=False)
    enabled = serializers.BooleanField(required=False)
    double_opt_in = serializers.BooleanField(required=False)


# --- contacts --------------------------------------------------------------------------------

class ContactOut(serializers.Serializer):
    id = serializers.IntegerField()
    list_id = serializers.IntegerField(source="mail_list_id")
    email = serializers.CharField()
    fullname = serializers.CharField()
    sex = serializers.CharField(help_text="M, F or empty")
    birthday = serializers.DateField(allow_null=True)
    phone = serializers.CharField()
    area = serializers.CharField()
    var1 = serializers.CharField()
    var2 = serializers.CharField()
    var3 = serializers.CharField()
    var4 = serializers.CharField()
    var5 = serializers.CharField()
    var6 = serializers.CharField()
    var7 = serializers.CharField()
    var8 = serializers.CharField()
    var9 = serializers.CharField()
    var10 = serializers.CharField()
    subscribed = serializers.BooleanField()
    pending = serializers.BooleanField(help_text="double opt-in: waiting for the confirmation")
    unsubscribed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class ContactIn(serializers.Serializer):
    email = Text(max_length=254, allow_blank=False)
    fullname = Text(max_length=200, required=False)
    sex = serializers.ChoiceField(choices=["", "M", "F"], required=False)
    birthday = serializers.DateField(required=False, allow_null=True)
    phone = Text(max_length=50, required=False)
    area = Text(max_length=100, required=False)
    var1 = Text(max_length=255, required=False)
    var2 = Text(max_length=255, required=False)
    var3 = Text(max_length=255, required=False)
    var4 = Text(max_length=255, required=False)
    var5 = Text(max_length=255, required=False)
    var6 = Text(max_length=255, required=False)
    var7 = Text(max_length=255, required=False)
    var8 = Text(max_length=255, required=False)
    var9 = Text(max_length=255, required=False)
    var10 = Text(max_length=255, required=False)

    def fields_for_service(self) -> dict:
        """The optional fields as the contacts services take them (birthday as YYYY-MM-DD)."""
        data = dict(self.validated_data)
        data.pop("email")
        if data.get("birthday"):
            data["birthday"] = data["birthday"].isoformat()
        else:
            data.pop("birthday", None)
        return data


class ContactPage(serializers.Serializer):
    total = serializers.IntegerField(help_text="contacts matching the search (all pages)")
    next_after_id = serializers.IntegerField(allow_null=True,
                                             help_text="pass as after_id for the next page; null on the last page")
    results = ContactOut(many=True)


def _batch_max() -> int:
    return settings.HUB_CONTACTS_BATCH_MAX


class BatchIn(serializers.Serializer):
    contacts = serializers.ListField(child=ContactIn(), required=False, max_length=500,
                                     help_text="at most 500 records (HUB_CONTACTS_BATCH_MAX)")
    text = Text(required=False, max_length=2 * 1024 * 1024,
                help_text="instead of contacts: V28 ml_addr lines, email;name;sex;birthday;phone;area;var1..var10")
    separator = Text(required=False, max_length=20, default="\n", help_text="record separator of `text`")
    skip_invalid = serializers.BooleanField(
        required=False, default=False,
        help_text="false (default): any invalid record refuses the whole batch and nothing is written; "
                  "true: invalid records are skipped and reported")

    def validate(self, attrs):
        if bool(attrs.get("contacts")) == bool(attrs.get("text", "").strip()):
            raise serializers.ValidationError(_("send either contacts or text"))
        return attrs


class BatchOut(serializers.Serializer):
    added = serializers.IntegerField()
    invalid = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.CharField(), help_text='"line N: reason"')


class SubscriberIn(serializers.Serializer):
    email = Text(max_length=254, allow_blank=False)
    name = Text(max_length=200, required=False, default="")


class SubscribeIn(serializers.Serializer):
    entries = serializers.ListField(child=SubscriberIn(), required=False, max_length=500)
    text = Text(required=False, max_length=2 * 1024 * 1024,
                help_text="instead of entries: V28 maillist formats (`e1,n1;e2,n2;` or one `email<TAB>name` a line)")

    def validate(self, attrs):
        if bool(attrs.get("entries")) == bool(attrs.get("text", "").strip()):
            raise serializers.ValidationError(_("send either entries or text"))
        return attrs


class UnsubscribeIn(serializers.Serializer):
    emails = serializers.ListField(child=Text(max_length=254, allow_blank=False), required=False, max_length=500)
    text = Text(required=False, max_length=2 * 1024 * 1024,
                help_text="instead of emails: comma-separated or one address a line")

    def validate(self, attrs):
        if bool(attrs.get("emails")) == bool(attrs.get("text", "").strip()):
            raise serializers.ValidationError(_("send either emails or text"))
        return attrs


# --- imports ---------------------------------------------------------------------------------

class ImportOut(serializers.Serializer):
    id = serializers.IntegerField()
    list_id = serializers.IntegerField(source="mail_list_id")
    filename = serializers.CharField()
    status = serializers.IntegerField(help_text="V28 codes: 1 done, -1/-2/-3 failed; 0 queued, 2 running")
    status_label = serializers.CharField(source="get_status_display")
    finished = serializers.BooleanField()
    progress = serializers.IntegerField(help_text="0..100")
    count_all = serializers.IntegerField()
    count_invalid = serializers.IntegerField()
    count_duplicate = serializers.IntegerField()
    count_imported = serializers.IntegerField()
    error = serializers.CharField()
    invalid_sample = serializers.CharField(help_text="the first invalid rows, with their reasons")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ImportIn(serializers.Serializer):
    file = serializers.FileField(help_text="`;`-separated text, CSV (comma or tab), or XLSX; UTF-8 or GBK/GB18030")
