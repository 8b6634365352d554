"""How search_contacts and empty_list read a big list (the paths bench/contacts_scale.py
measures): deep offsets skip over ids only, a keyword whose matches fit on the first page is
not counted a second time, and an empty walks the list by keyset."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hub.contacts import services, store
from hub.contacts.models import Contact

from .conftest import count_ok


@pytest.fixture
def filled(account, mail_list):
    services.add_contacts(account, mail_list.pk, [
        {"email": f"user{i}@example.com", "fullname": "王芳" if i % 3 == 0 else f"User {i}"} for i in range(30)])
    return list(Contact.objects.filter(mail_list=mail_list).order_by("id"))


def selects(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]


def test_offset_pages_match_cursor_pages(account, mail_list, filled):
    walked = []
    after = 0
    while True:
        _total, page = services.search_contacts(account, mail_list.pk, after_id=after, limit=7)
        if not page:
            break
        walked.append([c.pk for c in page])
        after = page[-1].pk
    for number, expected in enumerate(walked):
        total, page = services.search_contacts(account, mail_list.pk, offset=number * 7, limit=7)
        assert total == 30 and [c.pk for c in page] == expected
        assert all(c.email and c.account_id == account.pk for c in page)  # whole rows, not ids
    assert services.search_contacts(account, mail_list.pk, offset=30, limit=7) == (30, [])
    # With a keyword the offset counts matches only.
    total, page = services.search_contacts(account, mail_list.pk, keyword="王芳", offset=4, limit=3)
    assert total == 10 and [c.email for c in page] == ["user12@example.com", "user15@example.com",
                                                       "user18@example.com"]


def test_a_deep_offset_skips_over_ids_only(account, mail_list, filled):
    with CaptureQueriesContext(connection) as ctx:
        services.search_contacts(account, mail_list.pk, offset=20, limit=5)
    skipping = [sql for sql in selects(ctx.captured_queries) if "OFFSET" in sql.upper()]
    assert len(skipping) == 1
    columns = skipping[0].upper().split(" FROM ")[0]
    assert "EMAIL" not in columns and "FULLNAME" not in columns and '"ID"' in columns.replace("`", '"')


def test_keyword_total_counted_only_when_the_page_is_full(account, mail_list, filled):
    with CaptureQueriesContext(connection) as ctx:
        total, page = services.search_contacts(account, mail_list.pk, keyword="user7@", limit=5)
    assert (total, [c.email for c in page]) == (1, ["user7@example.com"])
    if connection.vendor == "mysql":
        # MariaDB: one pass over the search index gives the page and the total together.
        assert len([sql for sql in selects(ctx.captured_queries) if "contacts_contact_search" in sql]) == 1
    else:
        assert not [sql for sql in selects(ctx.captured_queries) if "COUNT(" in sql.upper()]

    with CaptureQueriesContext(connection) as ctx:
        total, page = services.search_contacts(account, mail_list.pk, keyword="王芳", limit=4)
    assert total == 10 and len(page) == 4
    assert [sql for sql in selects(ctx.captured_queries) if "COUNT(" in sql.upper()]
    # A later page (cursor or offset) still reports the whole total, not what is left.
    assert services.search_contacts(account, mail_list.pk, keyword="王芳", after_id=page[-1].pk, limit=50)[0] == 10
    assert services.search_contacts(account, mail_list.pk, keyword="王芳", offset=8, limit=50)[0] == 10
    assert services.search_contacts(account, mail_list.pk, keyword="nobody-has-this") == (0, [])


def test_empty_walks_the_list_by_keyset(account, mail_list, filled, monkeypatch):
    other = services.create_list(account, "other")
    services.add_contact(account, other.pk, "stays@example.com")
    monkeypatch.setattr(store, "DELETE_CHUNK", 8)
    with CaptureQueriesContext(connection) as ctx:
        assert services.empty_list(account, mail_list.pk) == 30
    chunk_reads = [sql for sql in selects(ctx.captured_queries) if "LIMIT 8" in sql.upper()]
    assert len(chunk_reads) == 5  # 8 + 8 + 8 + 6, then an empty read
    assert all('"id" >' in sql.replace("`", '"') for sql in chunk_reads)
    assert [f'> {c.pk}' in sql.replace("`", '"') for c, sql in zip(
        [filled[7], filled[15], filled[23], filled[29]], chunk_reads[1:], strict=True)] == [True] * 4
    assert count_ok(mail_list) == 0 and count_ok(other) == 1


def test_keyword_pages_and_totals_agree_with_a_plain_filter(account, mail_list, filled):
    """The keyword path (MariaDB: the search index via store.keyword_ids; SQLite: the ORM)
    pages by cursor and offset alike, counts every match, and matches names and addresses."""
    expected = [c.pk for c in filled if "王芳" in c.fullname]
    total, page = services.search_contacts(account, mail_list.pk, keyword="王芳", limit=4)
    assert total == len(expected) == 10 and [c.pk for c in page] == expected[:4]
    total, page = services.search_contacts(account, mail_list.pk, keyword="王芳", after_id=expected[3], limit=4)
    assert total == 10 and [c.pk for c in page] == expected[4:8]
    total, page = services.search_contacts(account, mail_list.pk, keyword="王芳", offset=8, limit=4)
    assert total == 10 and [c.pk for c in page] == expected[8:]
    total, page = services.search_contacts(account, mail_list.pk, keyword="USER2@EXAMPLE", limit=50)
    assert (total, [c.email for c in page]) == (1, ["user2@example.com"])


def test_like_wildcards_in_a_keyword_are_plain_characters(account, mail_list, filled):
    services.add_contacts(account, mail_list.pk, [{"email": "a_b%c@example.com", "fullname": "50% off_sale"}])
    assert [c.email for c in services.search_contacts(account, mail_list.pk, keyword="_b%")[1]] == [
        "a_b%c@example.com"]
    assert [c.fullname for c in services.search_contacts(account, mail_list.pk, keyword="0% o")[1]] == [
        "50% off_sale"]
    assert services.search_contacts(account, mail_list.pk, keyword="%")[0] == 1  # not "everything"
    assert services.search_contacts(account, mail_list.pk, keyword="user_")[0] == 0  # "_" is no wildcard


def whole_row_reads_after_an_id(queries) -> list[str]:
    """SELECTs of contact columns beyond the (mail_list, id) index with `id > X` in them:
    the shape MariaDB reads by walking the list from its start (store.page_after)."""
    found = []
    for sql in selects(queries):
        columns, _, where = sql.upper().partition(" WHERE ")
        reads_contacts, reads_email = "CONTACTS_CONTACT" in columns, "EMAIL" in columns.split(" FROM ")[0]
        # `"id" >` or `` `id` > ``, table-qualified or not; not MAIL_LIST_ID.
        if reads_contacts and reads_email and re.search(r"\bID[\"`]?\s*>", where):
            found.append(sql)
    return found


def test_page_after_reads_ids_from_the_index_then_rows_by_key(mail_list, filled):
    after, walked, reads = 0, [], []
    while True:
        with CaptureQueriesContext(connection) as ctx:
            rows, last = store.page_after(mail_list.pk, after, 7, "id", "email")
        reads += ctx.captured_queries
        if last is None:
            break
        walked += rows
        after = last
    assert walked == [(c.pk, c.email) for c in filled]
    assert reads and not whole_row_reads_after_an_id(reads)


def test_page_after_skips_rows_deleted_between_its_two_reads(mail_list, filled, monkeypatch):
    real = Contact.objects.filter

    def filter_then_delete(*args, **kwargs):
        if "id__in" in kwargs:  # the second read: the third contact was deleted meanwhile
            Contact.objects.filter(pk=filled[2].pk).delete()
        return real(*args, **kwargs)

    monkeypatch.setattr(Contact.objects, "filter", filter_then_delete)
    rows, last = store.page_after(mail_list.pk, 0, 5, "id")
    assert rows == [(c.pk,) for c in filled[:5] if c is not filled[2]] and last == filled[4].pk


def test_cursor_pages_read_ids_before_rows(account, mail_list, filled):
    with CaptureQueriesContext(connection) as ctx:
        _total, page = services.search_contacts(account, mail_list.pk, after_id=filled[20].pk, limit=5)
    assert [c.pk for c in page] == [c.pk for c in filled[21:26]]
    assert not whole_row_reads_after_an_id(ctx.captured_queries)
