"""hub.sending's address lists: the fast Address construction for dot-atom local parts gives
exactly what the email package's addr-spec parser gives."""

from __future__ import annotations

from email.headerregistry import Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.sending import _address, envelope_addresses, format_address_list, parse_address_list

NAMES = ["", "Bob", "张三", 'Smith, "Jr"', "a.b", "O'Neil (x)", "=?utf-8?q?x?="]
ADDRS = ["bob@example.com", "first.last+tag@sub.example.co.uk", "a_b-c@bücher.example", "x!#$%&'*+/=?^_`{|}~@e.org"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("addr", ADDRS)
def test_fast_address_formats_like_the_parser(name, addr):
    assert str(_address(name, addr)) == str(Address(display_name=name, addr_spec=addr))


@given(st.from_regex(r"\A[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\.[A-Za-z0-9_-]{1,5}){0,2}\Z"),
       st.text(max_size=20).filter(lambda s: "\r" not in s and "\n" not in s))
def test_fast_address_matches_the_parser_for_any_dot_atom(local, name):
    addr = f"{local}@example.com"
    assert str(_address(name, addr)) == str(Address(display_name=name, addr_spec=addr))


def test_a_quoted_local_part_goes_through_the_parser():
    assert str(_address("", '"john doe"@example.com')) == '"john doe"@example.com'


def test_envelope_addresses_reads_to_cc_and_bcc():
    fields = {"to": format_address_list(parse_address_list("to", "张三 <a@example.com>, b@example.com")),
              "cc": "", "bcc": format_address_list(parse_address_list("bcc", "c@example.com"))}
    assert envelope_addresses(fields) == ["a@example.com", "b@example.com", "c@example.com"]
