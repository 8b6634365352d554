"""Reading SMTP replies: which failures are permanent, and what kind of failure (the EDM
platform's failure types), which decides whether a recipient gets suppressed."""

from __future__ import annotations

import re

from ..models import FailureType

# Enhanced status codes (RFC 3463) and the phrases servers use instead of them.
_NOT_EXIST = re.compile(
    r"\b5\.1\.(1|10|6)\b|user unknown|unknown user|no such user|does not exist|doesn't exist|"
    r"recipient not found|mailbox not found|no mailbox|invalid recipient|unknown recipient|"
    r"address rejected: user|用户不存在|收件人不存在|mailbox unavailable: user", re.I)
_OVER_QUOTA = re.compile(r"\b5\.2\.2\b|quota|mailbox (is )?full|over ?quota|insufficient storage|空间不足", re.I)
_BLACKLIST = re.compile(r"blacklist|blocklist|block list|spamhaus|\brbl\b|dnsbl|listed at|黑名单", re.I)
_SPAM = re.compile(r"\bspam\b|content rejected|message content|垃圾邮件", re.I)
_INVALID = re.compile(r"\b5\.1\.3\b|bad recipient address syntax|invalid address|syntax", re.I)


def failure_type(code: int | None, text: str) -> int:
    """The FailureType for a refusal (code None means the server was not reached)."""
    if code is None:
        return FailureType.CONNECT_ERROR
    if _NOT_EXIST.search(text):
        return FailureType.NOT_EXIST
    if _OVER_QUOTA.search(text) or code == 552:
        return FailureType.OVER_QUOTA
    if _BLACKLIST.search(text):
        return FailureType.BLACKLIST
    if _SPAM.search(text):
        return FailureType.SPAM_CONTENT
    if _INVALID.search(text) or code in (501, 553):
        return FailureType.INVALID
    return FailureType.REFUSED


def is_hard_bounce(code: int | None, text: str) -> bool:
    """A permanent 'this address does not exist': the recipient should be suppressed."""
    return code is not None and 500 <= code < 600 and failure_type(code, text) == FailureType.NOT_EXIST
