"""Another account's ids are "not found", exactly like ids that do not exist, for every
service that takes an id; and nothing is changed."""

from __future__ import annotations

import io

import pytest

from hub.contacts import services
from hub.contacts.models import Contact, ImportJob, MailList
from hub.contacts.services import NotFound

from .conftest import count_ok


@pytest.fixture
def theirs(other):
    mail_list = services.create_list(other, "theirs")
    contact = services.add_contact(other, mail_list.pk, "their@x.com")
    job = services.start_import(other, mail_list.pk, io.BytesIO(b"a@x.com\n"), "a.csv")
    return mail_list, contact, job


CALLS = {
    "get_list": lambda acc, t: services.get_list(acc, t[0].pk),
    "update_list": lambda acc, t: services.update_list(acc, t[0].pk, name="mine now"),
    "delete_list": lambda acc, t: services.delete_list(acc, t[0].pk),
    "add_contact": lambda acc, t: services.add_contact(acc, t[0].pk, "new@x.com"),
    "add_contacts": lambda acc, t: services.add_contacts(acc, t[0].pk, [{"email": "new@x.com"}]),
    "search_contacts": lambda acc, t: services.search_contacts(acc, t[0].pk),
    "delete_contact": lambda acc, t: services.delete_contact(acc, t[1].pk),
    "empty_list": lambda acc, t: services.empty_list(acc, t[0].pk),
    "subscribe": lambda acc, t: services.subscribe(acc, t[0].pk, [("new@x.com", "")]),
    "unsubscribe": lambda acc, t: services.unsubscribe(acc, t[0].pk, ["their@x.com"]),
    "unsubscribed_contacts": lambda acc, t: services.unsubscribed_contacts(acc, t[0].pk),
    "start_import": lambda acc, t: services.start_import(acc, t[0].pk, io.BytesIO(b"b@x.com\n"), "b.csv"),
    "get_import": lambda acc, t: services.get_import(acc, t[2].pk),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_other_accounts_ids_are_not_found(name, account, theirs):
    with pytest.raises(NotFound) as info:
        CALLS[name](account, theirs)
    assert info.value.code == "not_exist"
    mail_list, _contact, _job = theirs
    mail_list.refresh_from_db()
    assert mail_list.name == "theirs"
    assert list(Contact.objects.filter(mail_list=mail_list).values_list("email", "subscribed")) == [("their@x.com", True)]
    assert count_ok(mail_list) == 1
    assert ImportJob.objects.count() == 1


@pytest.mark.parametrize("bad_id", [0, -1, "abc", "", None, 10**30, "1 OR 1=1"])
def test_malformed_ids_are_not_found(account, bad_id):
    with pytest.raises(NotFound):
        services.get_list(account, bad_id)


def test_lists_and_imports_show_only_the_accounts_own(account, theirs):
    mine = services.create_list(account, "mine")
    assert list(services.lists(account)) == [mine]
    assert list(services.lists(account, theirs[0].pk)) == []
    assert list(services.imports(account)) == []
    assert services.search_contacts(account, None) == (0, [])
    assert MailList.objects.count() == 2
