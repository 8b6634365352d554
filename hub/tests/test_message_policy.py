"""SMTP_POLICY's short cut (a header value that fits on one line as printable ASCII is
written as it is) writes exactly the bytes compat32's folding writes, for any value."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.header import Header
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.delivery.message import SMTP_POLICY, address_header, header_text

FOLDING = compat32.clone(linesep="\r\n")  # what the hub used before the short cut

NAMES = st.sampled_from(["To", "Subject", "From", "Content-Type", "X-SMTPHub-Log-ID", "List-Unsubscribe"])
ASCII_TEXT = st.text(alphabet=st.characters(min_codepoint=0x09, max_codepoint=0x7e), max_size=120)


@settings(max_examples=3000, deadline=None)
@given(name=NAMES, value=ASCII_TEXT | st.text(max_size=90))
def test_same_bytes_as_compat32_folding(name: str, value: str) -> None:
    assert folded(SMTP_POLICY, name, value) == folded(FOLDING, name, value)


def folded(policy, name: str, value: str) -> bytes | str:
    try:
        return policy.fold_binary(name, value)
    except HeaderParseError as exc:  # an embedded header: refused the same way by both
        return type(exc).__name__


def test_short_cut_taken_only_for_one_plain_line() -> None:
    assert SMTP_POLICY.fold_binary("To", "a@example.com") == b"To: a@example.com\r\n"
    long = "word " * 30
    # Too long for one line: folded between words, as before.
    assert SMTP_POLICY.fold_binary("Subject", long.strip()).count(b"\r\n") > 1


@settings(max_examples=1500, deadline=None)
@given(name=st.sampled_from(["Subject", "From", "To", "Reply-To"]), text=st.text(max_size=90),
       address_name=st.text(max_size=40))
def test_encoded_headers_fold_as_compat32_folds_them_also_when_cached(name: str, text: str, address_name: str) -> None:
    # SMTP_POLICY keeps the folding of each Header it wrote (the same Subject and From
    # recur in most messages); asked twice, it answers the first answer, which must be
    # compat32's own.
    for value in (header_text(text, name), address_header([(address_name, "user@example.com")], name)):
        if isinstance(value, Header):
            expected = folded(FOLDING, name, value)
            assert folded(SMTP_POLICY, name, value) == expected
            assert folded(SMTP_POLICY, name, value) == expected


def test_the_kept_folding_tells_charsets_and_names_apart() -> None:
    utf8, ascii_ = Header("plain words", "utf-8"), Header("plain words", "us-ascii")
    assert SMTP_POLICY.fold_binary("Subject", utf8) == FOLDING.fold_binary("Subject", utf8)
    assert SMTP_POLICY.fold_binary("Subject", ascii_) == FOLDING.fold_binary("Subject", ascii_)
    assert SMTP_POLICY.fold_binary("Subject", utf8) != SMTP_POLICY.fold_binary("Subject", ascii_)
    assert SMTP_POLICY.fold_binary("To", utf8).startswith(b"To: ")
