"""The list and contact services: counters, duplicates, search, paging, subscribe and
unsubscribe, the unsubscribe export."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from hub.contacts import services
from hub.contacts.models import Contact, MailList
from hub.contacts.services import ContactError, NotFound

from .conftest import count_ok, emails


def test_list_crud(account):
    created = services.create_list(account, "  News  ", "weekly")
    assert (created.name, created.description, created.enabled, created.contact_count) == ("News", "weekly", True, 0)
    assert services.get_list(account, str(created.pk)) == created
    updated = services.update_list(account, created.pk, name="Letters", enabled=False)
    assert (updated.name, updated.description, updated.enabled) == ("Letters", "weekly", False)
    assert list(services.lists(account)) == [created]
    assert list(services.lists(account, created.pk)) == [created]
    services.delete_list(account, created.pk)
    assert not MailList.objects.exists()


@pytest.mark.parametrize("name, description, code", [("", "", "invalid_name"), ("x" * 201, "", "invalid_name"),
                                                     ("ok", "d" * 2001, "invalid_description")])
def test_list_refusals_write_nothing(account, name, description, code):
    with pytest.raises(ContactError) as info:
        services.create_list(account, name, description)
    assert info.value.code == code
    assert not MailList.objects.exists()


def test_add_contact_normalizes_and_refuses_duplicates(account, mail_list):
    contact = services.add_contact(account, mail_list.pk, " A@X.Com ", fullname="Ann", sex="F", birthday="1990-02-03",
                                   var10="ten")
    assert (contact.email, contact.fullname, contact.sex, contact.birthday, contact.var10, contact.account) == (
        "a@x.com", "Ann", "F", datetime.date(1990, 2, 3), "ten", account)
    assert contact.subscribed and not contact.pending
    with pytest.raises(ContactError) as info:
        services.add_contact(account, mail_list.pk, "a@X.COM")
    assert info.value.code == "exist"
    with pytest.raises(ContactError) as info:
        services.add_contact(account, mail_list.pk, "not-an-address")
    assert info.value.code == "invalid_email"
    with pytest.raises(ContactError) as info:
        services.add_contact(account, mail_list.pk, "b@x.com", birthday="1990-02-30")
    assert info.value.code == "invalid_field"
    assert emails(mail_list) == ["a@x.com"]
    assert count_ok(mail_list) == 1


def test_batch_add_counts_exactly(account, mail_list):
    services.add_contact(account, mail_list.pk, "old@x.com")
    text = ("new1@x.com;One;\n"
            "NEW1@X.COM;again;\n"      # duplicate within the batch
            "old@x.com;;\n"            # duplicate against the list
            "bad-address;;\n"          # invalid
            "new2@x.com;Two;Q;\n"      # invalid sex
            "\n"
            "new3@x.com\tThree\n")
    result = services.add_contacts(account, mail_list.pk, services.parse_batch(text))
    assert (result.added, result.duplicate, result.invalid) == (2, 2, 2)
    assert result.errors == ["line 4: 'bad-address' is not a valid email address", "line 5: sex must be M or F"]
    assert emails(mail_list) == ["old@x.com", "new1@x.com", "new3@x.com"]
    assert count_ok(mail_list) == 3


def test_batch_add_over_the_limit_writes_nothing(account, mail_list, settings):
    settings.HUB_CONTACTS_BATCH_MAX = 3
    with pytest.raises(ContactError) as info:
        services.add_contacts(account, mail_list.pk, [{"email": f"u{i}@x.com"} for i in range(4)])
    assert info.value.code == "too_many"
    assert count_ok(mail_list) == 0


def test_search_keyword_email_and_paging(account, mail_list):
    for i in range(7):
        services.add_contact(account, mail_list.pk, f"user{i}@example.com", fullname=f"名字{i}")
    services.add_contact(account, mail_list.pk, "boss@corp.cn", fullname="Zhang Wei")
    total, page = services.search_contacts(account, mail_list.pk, limit=3)
    assert total == 8 and [c.email for c in page] == ["user0@example.com", "user1@example.com", "user2@example.com"]
    total, page = services.search_contacts(account, mail_list.pk, after_id=page[-1].pk, limit=3)
    assert total == 8 and [c.email for c in page] == ["user3@example.com", "user4@example.com", "user5@example.com"]
    total, page = services.search_contacts(account, mail_list.pk, offset=6, limit=50)
    assert [c.email for c in page] == ["user6@example.com", "boss@corp.cn"]
    assert services.search_contacts(account, mail_list.pk, keyword="CORP")[0] == 1
    assert [c.email for c in services.search_contacts(account, mail_list.pk, keyword="zhang")[1]] == ["boss@corp.cn"]
    assert services.search_contacts(account, mail_list.pk, keyword="名字")[0] == 7
    total, page = services.search_contacts(account, mail_list.pk, email="BOSS@corp.cn")
    assert total == 1 and page[0].fullname == "Zhang Wei"
    assert services.search_contacts(account, mail_list.pk, email="nobody@corp.cn") == (0, [])
    assert services.search_contacts(account, None, keyword="boss")[0] == 1  # all the account's lists


def test_delete_and_empty_keep_the_counter(account, mail_list, monkeypatch):
    from hub.contacts import store

    monkeypatch.setattr(store, "DELETE_CHUNK", 3)  # several chunks
    services.add_contacts(account, mail_list.pk, [{"email": f"u{i}@x.com"} for i in range(10)])
    first = Contact.objects.filter(mail_list=mail_list).order_by("id").first()
    services.delete_contact(account, first.pk)
    assert count_ok(mail_list) == 9
    with pytest.raises(NotFound):
        services.delete_contact(account, first.pk)
    assert services.empty_list(account, mail_list.pk) == 9
    assert count_ok(mail_list) == 0


def test_delete_list_refused_while_importing(account, mail_list):
    MailList.objects.filter(pk=mail_list.pk).update(importing=True)
    services.add_contact(account, mail_list.pk, "a@x.com")
    with pytest.raises(ContactError) as info:
        services.delete_list(account, mail_list.pk)
    assert info.value.code == "list_importing"
    assert count_ok(mail_list) == 1


def test_subscribe_and_unsubscribe(account, mail_list):
    result = services.subscribe(account, mail_list.pk, services.parse_subscribe(
        "test1@bestedm.com, Test One; test2@bestedm.com; TEST1@bestedm.com, again; nope;"))
    assert (result.added, result.duplicate, result.invalid) == (2, 1, 1)
    names = dict(Contact.objects.filter(mail_list=mail_list).values_list("email", "fullname"))
    assert names == {"test1@bestedm.com": "Test One", "test2@bestedm.com": "test2"}  # name defaults to the local part

    result = services.unsubscribe(account, mail_list.pk, services.parse_unsubscribe(
        "test1@bestedm.com, stranger@bestedm.com, bad@, TEST1@bestedm.com"))
    assert (result.added, result.duplicate, result.invalid) == (2, 1, 1)
    left = {c.email: (c.subscribed, c.unsubscribed_at is not None) for c in Contact.objects.filter(mail_list=mail_list)}
    assert left == {"test1@bestedm.com": (False, True), "test2@bestedm.com": (True, False),
                    "stranger@bestedm.com": (False, True)}
    assert count_ok(mail_list) == 3
    # An unsubscribed address is not re-subscribed by a batch add (duplicate) ...
    assert services.add_contacts(account, mail_list.pk, [{"email": "test1@bestedm.com"}]).duplicate == 1
    assert not Contact.objects.get(email="test1@bestedm.com").subscribed
    # ... but subscribing again does.
    assert services.subscribe(account, mail_list.pk, [("test1@bestedm.com", "")]).added == 1
    assert Contact.objects.get(email="test1@bestedm.com").subscribed
    assert services.unsubscribe(account, mail_list.pk, ["test2@bestedm.com"]).added == 1
    assert services.unsubscribe(account, mail_list.pk, ["test2@bestedm.com"]).duplicate == 1


def test_unsubscribed_export_by_day(account, mail_list):
    services.unsubscribe(account, mail_list.pk, ["a@x.com", "b@x.com", "c@x.com"])
    services.add_contact(account, mail_list.pk, "still@x.com")
    tz = timezone.get_current_timezone()
    Contact.objects.filter(email="a@x.com").update(unsubscribed_at=datetime.datetime(2026, 1, 1, 23, 30, tzinfo=tz))
    Contact.objects.filter(email="b@x.com").update(unsubscribed_at=datetime.datetime(2026, 1, 2, 0, 10, tzinfo=tz))
    assert [c.email for c in services.unsubscribed_contacts(account, mail_list.pk)] == ["a@x.com", "b@x.com", "c@x.com"]
    got = services.unsubscribed_contacts(account, mail_list.pk, date_from="2026-01-01", date_to="2026-01-01")
    assert [c.email for c in got] == ["a@x.com"]
    got = services.unsubscribed_contacts(account, None, date_from=datetime.date(2026, 1, 2), date_to="2026-01-02")
    assert [c.email for c in got] == ["b@x.com"]
    with pytest.raises(ContactError):
        services.unsubscribed_contacts(account, mail_list.pk, date_from="01/02/2026")


def test_export_streams_in_chunks(account, mail_list, monkeypatch):
    monkeypatch.setattr(services, "EXPORT_CHUNK", 2)
    services.unsubscribe(account, mail_list.pk, [f"u{i}@x.com" for i in range(5)])
    assert len(list(services.unsubscribed_contacts(account, mail_list.pk))) == 5
