"""Fixtures of the contacts tests: two accounts (tenancy), a list, an import directory of
the test's own."""

from __future__ import annotations

import pytest

from hub.contacts import services
from hub.contacts.models import Contact, MailList


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.HUB_IMPORT_DIR = tmp_path / "imports"
    return settings.HUB_IMPORT_DIR




@pytest.fixture
def mail_list(account) -> MailList:
    return services.create_list(account, "客户", "customers")


def emails(mail_list: MailList) -> list[str]:
    return list(Contact.objects.filter(mail_list=mail_list).order_by("id").values_list("email", flat=True))


def count_ok(mail_list: MailList) -> int:
    """The list's counter, checked against a real COUNT(*)."""
    mail_list.refresh_from_db()
    assert mail_list.contact_count == Contact.objects.filter(mail_list=mail_list).count()
    return mail_list.contact_count
