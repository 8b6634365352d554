"""Address normalization and the V28 batch formats (d)1, (d)3, (d)4."""

from __future__ import annotations

import datetime

import pytest

from hub.contacts.normalize import (
    Invalid,
    normalize_email,
    parse_batch,
    parse_subscribe,
    parse_unsubscribe,
    record_values,
    row_values,
)


@pytest.mark.parametrize("raw, expected", [
    ("a@x.com", "a@x.com"),
    ("  A@X.Com \t", "a@x.com"),
    ("First.Last+tag@Example.ORG", "first.last+tag@example.org"),
    ("user@Bücher.Example", "user@xn--bcher-kva.example"),
    ("张三@例子.中国", None),  # non-ASCII local part: refused (needs SMTPUTF8 end to end)
    ("info@例子.中国", "info@xn--fsqu00a.xn--fiqs8s"),
    ("x@sub.xn--fiqs8s", "x@sub.xn--fiqs8s"),
])
def test_normalize_email(raw, expected):
    if expected is None:
        with pytest.raises(Invalid):
            normalize_email(raw)
    else:
        assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "plainaddress", "@x.com", "a@", "a@@x.com", "a@x", "a b@x.com",
                                 "a@x..com", "a@-x.com", "a@x.com\nBcc: b@y.com", "a\x00@x.com", "a@" + "x" * 250 + ".com"])
def test_invalid_addresses(raw):
    with pytest.raises(Invalid):
        normalize_email(raw)


def test_case_variants_are_one_address():
    assert normalize_email("A@X.com") == normalize_email("a@x.COM") == "a@x.com"


# --- (d)1 ml_addr ----------------------------------------------------------------------------

DOC_EXAMPLE = ("Coming1@bestdem.org;coming1;M;1986-08-10;13528775968;北京;var1;var2;.... var10;\n"
               "test@bestdem.org; test;F;1986-08-10;13528775968;area;var1;var2;.... var10;")


def test_batch_doc_example():
    records = parse_batch(DOC_EXAMPLE)
    assert [r["email"] for r in records] == ["Coming1@bestdem.org", "test@bestdem.org"]
    first, second = (record_values(r) for r in records)
    assert first[:6] == ("coming1@bestdem.org", "coming1", "M", datetime.date(1986, 8, 10), "13528775968", "北京")
    assert first[6:9] == ("var1", "var2", ".... var10")
    assert second[1] == "test"  # the space after ';' is trimmed
    assert second[2] == "F"


def test_batch_trailing_separator_spaces_crlf_and_blank_lines():
    records = parse_batch("a@x.com;\r\n\r\n  b@x.com ; Bee ;\r\nc@x.com")
    assert [(r["email"], r.get("fullname"), r["line"]) for r in records] == [
        ("a@x.com", None, 1), ("b@x.com", "Bee", 3), ("c@x.com", None, 4)]


def test_batch_tab_separated_lines():
    records = parse_batch("user1@domain.com\t姓名\tM\t1990-01-02\t13800000000\t上海\t变量1\t变量2")
    values = record_values(records[0])
    assert values[:6] == ("user1@domain.com", "姓名", "M", datetime.date(1990, 1, 2), "13800000000", "上海")
    assert values[6:8] == ("变量1", "变量2")


def test_batch_custom_separator():
    records = parse_batch("a@x.com;A;|b@x.com;B;|", separator="|")
    assert [(r["email"], r["fullname"]) for r in records] == [("a@x.com", "A"), ("b@x.com", "B")]


def test_batch_too_many_fields_is_invalid():
    record = parse_batch("a@x.com" + ";v" * 16)[0]
    with pytest.raises(Invalid, match="more than 16 fields"):
        record_values(record)


@pytest.mark.parametrize("fields, reason", [
    (["a@x.com", "", "X"], "sex"),
    (["a@x.com", "", "", "1986-13-01"], "birthday"),
    (["a@x.com", "", "", "yesterday"], "birthday"),
    (["a@x.com", "n" * 201], "fullname"),
    (["a@x.com", "", "", "", "1" * 51], "phone"),
])
def test_invalid_fields(fields, reason):
    with pytest.raises(Invalid, match=reason):
        row_values(fields)


def test_lenient_field_forms():
    values = row_values(["a@x.com", "Li\nLei", "男", "1986/8/1", 13528775968.0, "", "", "", ""])
    assert values[1:5] == ("Li Lei", "M", datetime.date(1986, 8, 1), "13528775968")
    assert row_values(["a@x.com", "", "f", "0000-00-00"])[2:4] == ("F", None)
    assert record_values({"email": "a@x.com", "Var10": "ten", "name": "N", "mobile": "1"})[-1] == "ten"
    with pytest.raises(Invalid, match="unknown field"):
        record_values({"email": "a@x.com", "color": "red"})


# --- (d)3 subscribe ------------------------------------------------------------------------------

def test_subscribe_format_1():
    assert parse_subscribe("test1@bestedm.com, test1; test2@bestedm.com, test2;") == [
        ("test1@bestedm.com", "test1"), ("test2@bestedm.com", "test2")]
    assert parse_subscribe("a@x.com;b@x.com,Bee;") == [("a@x.com", ""), ("b@x.com", "Bee")]


def test_subscribe_format_2_tab_or_comma_per_line():
    assert parse_subscribe("test1@bestedm.com\ttest1\r\ntest2@bestedm.com, 王五\n\nc@x.com\n") == [
        ("test1@bestedm.com", "test1"), ("test2@bestedm.com", "王五"), ("c@x.com", "")]


# --- (d)4 unsubscribe ----------------------------------------------------------------------------

def test_unsubscribe_formats():
    assert parse_unsubscribe("test1@bestedm.com, test2@bestedm.com,") == ["test1@bestedm.com", "test2@bestedm.com"]
    assert parse_unsubscribe("a@x.com\r\nb@x.com\n\n c@x.com ") == ["a@x.com", "b@x.com", "c@x.com"]
    assert parse_unsubscribe("  ,\n") == []
