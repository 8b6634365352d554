"""Reading SMTP replies: which failures are permanent, and what kind of failure (the EDM
platform's failure types 1..10, V28 (a)6), which decides whether a recipient gets suppressed.

Table-driven: PHRASES maps the wordings real providers use (QQ, NetEase 163/126, Sina,
Aliyun, Tencent Exmail, Gmail, Outlook/Hotmail, Yahoo; see hub/tests/test_bounce_table.py for
the replies and where each came from) to a type, checked in order, first match wins; then the
enhanced status code (RFC 3463) and last the basic reply code. Each row's phrases are joined
into one compiled regular expression, so a reply costs about a dozen regex scans (it runs once
per failed message on the delivery worker). docs/bounces.md explains every choice.

Types (V28 (a)6) as the hub uses them:
  1 NOT_EXIST     the mailbox does not exist, or is disabled/suspended for good
  2 OVER_QUOTA    the recipient's mailbox is full
  3 USER_REJECT   the recipient refuses this sender (personal block list, "rejected by recipients")
  4 SPAM_CONTENT  the message was judged spam or virus
  5 REFUSED       refused for any other reason: the sending IP/domain's reputation or an RBL,
                  rate limits, SPF/DKIM/DMARC, size limits, policy (not about the recipient)
  6 BLACKLIST     the recipient is on the hub's own suppression list (never from a reply)
  7 COMPLAINT     the recipient complained (ARF report; or suppressed after one)
  8 INVALID       the address cannot be delivered: its domain does not exist / has no MX,
                  or the server says the mailbox name is not allowed
  9 FORMAT_ERROR  the address is malformed (bad address syntax)
 10 CONNECT_ERROR the server was not reached (no reply code)
"""

from __future__ import annotations

import re

from ..models import FailureType

T = FailureType

# (type, phrases): lower-case regular-expression fragments, first matching row wins. Order
# matters where wordings overlap: QQ's rate limit "mailbox unavailable or access denied"
# before the generic "mailbox unavailable" (Outlook/Sina: no such user); "sending quota"
# (the sender's allowance) before the recipient's "quota"; the message-size limits before
# "exceeded ... allocation"; the recipient's own refusal before the generic RBL words.
PHRASES: list[tuple[int, list[str]]] = [
    (T.REFUSED, [
        r"mailbox unavailable or access denied",           # QQ: receiving frequency limited
        r"frequency (of receiving messages )?(is )?limited",  # QQ rate limits
        r"sending quota", r"daily user sending",           # the SENDER's allowance (Gmail 5.4.5)
        r"receiving mail (too quickly|at a rate)",         # Yahoo / Gmail 4.2.1 per-user rate
        r"mailsize limit", r"message size", r"message (is )?too (large|big|long)", r"too large",
        r"exceeds? (google's )?(the )?(maximum )?message size", r"size limit", r"attach\w* is too long",
        r"length of (data|attach)",                        # Aliyun 510
    ]),
    (T.SPAM_CONTENT, [
        r"dt:spm", r"content (is )?(rejected|denied)", r"mail content denied", r"reject by content spam",
        r"spam is embedded", r"suspected spam(?! ip)", r"likely unsolicited mail", r"anti-?spam engine",
        r"spamed by", r"rejected as spam", r"message (was )?(judged|identified|detected|blocked) as spam",
        r"content and attachment content guidelines", r"\bvirus", r"垃圾邮件",
    ]),
    (T.USER_REJECT, [
        r"rejected by (the )?recipients?\b(?! domain)", r"user rejected", r"user in blacklist",
        r"recipient (has )?blocked", r"sender (is )?(on|in) (the )?(user'?s?|recipient'?s?) (block ?list|blacklist)",
        r"not allowed to receive", r"isn't allowed to receive", r"拒收",
    ]),
    (T.OVER_QUOTA, [
        r"over ?quota", r"quota (exceed|exceeded)", r"exceeded (storage|quota)", r"mailbox (is )?full",
        r"mailbox full", r"out of storage", r"insufficient (system )?storage", r"space not enough",
        r"mailbox size limit", r"\bquota\b", r"空间不足", r"空间满", r"邮箱已满",
    ]),
    (T.INVALID, [  # the recipient's DOMAIN: before "does not exist" below
        r"domain (name )?(does not|doesn't) exist", r"host (or domain name )?not found", r"domain (name )?not found",
        r"no mx", r"dns query error", r"unrouteable", r"unroutable", r"couldn'?t find any host",
    ]),
    (T.NOT_EXIST, [
        r"user unknown", r"unknown user", r"no such (user|mailbox|recipient)", r"user not found",
        r"mailbox not found", r"recipient not found", r"recipientnotfound", r"user not exist",
        r"does ?n[o']?t exist", r"dosn't exist", r"not exist", r"doesn't have a \S+ account",
        r"address rejected: user", r"invalid (recipient|user|mailbox)\b(?! syntax)", r"unknown recipient",
        r"no mailbox", r"mailbox unavailable", r"unavailable mail user", r"not user of this server",
        r"is no longer valid", r"is disabled", r"mailbox disabled", r"account (has been )?disabled",
        r"deactivated mailbox", r"user suspended", r"account is inactive", r"user is locked",
        r"5\.4\.1 recipient address rejected: access denied",  # Exchange Online directory-based edge blocking
        r"用户不存在", r"收件人不存在", r"该用户不存在", r"邮箱不存在", r"帐号不存在", r"账号不存在",
    ]),
    (T.FORMAT_ERROR, [
        r"bad (recipient )?address syntax", r"invalid (recipient |address )?syntax", r"syntax error in (mailbox|address)",
        r"malformed address", r"格式错误",
    ]),
    (T.INVALID, [
        r"domain does not accept mail", r"mailbox name not allowed", r"invalid (address|domain)", r"无效地址",
    ]),
    (T.REFUSED, [  # what remains: about the sender, not the recipient
        r"spamhaus", r"\brbl\b", r"dnsbl", r"block ?list", r"blacklist", r"black ip", r"banned",
        r"black (ip|mail address)", r"reputation", r"relay", r"spf", r"dkim", r"dmarc", r"policy", r"黑名单",
    ]),
    (T.CONNECT_ERROR, [
        r"connection (timed out|refused|reset)", r"lost connection", r"timed out", r"network is unreachable",
    ]),
]

_TABLE = [(int(kind), re.compile("|".join(f"(?:{p})" for p in phrases), re.IGNORECASE)) for kind, phrases in PHRASES]

# RFC 3463 enhanced status codes: class.subject.detail -> type (only the unambiguous ones).
STATUS_CODES: dict[str, int] = {
    "1.1": T.NOT_EXIST, "1.6": T.NOT_EXIST, "1.10": T.NOT_EXIST, "2.1": T.NOT_EXIST,
    "1.2": T.INVALID, "1.3": T.FORMAT_ERROR,
    "2.2": T.OVER_QUOTA,
    "2.3": T.REFUSED, "3.4": T.REFUSED,   # message too big for the recipient / the system
    "7.1": T.REFUSED,                     # delivery not authorized
    "4.4": T.INVALID,                     # unable to route (Postfix: host or domain name not found)
    "4.1": T.CONNECT_ERROR, "4.2": T.CONNECT_ERROR, "4.7": T.CONNECT_ERROR,  # no answer, bad connection, expired
}
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3}\.\d{1,3})(?![\d.])")

# A recipient the hub itself dropped at claim time (hub.delivery.attempt): the text of its
# refused_recipients entry starts with this, then the suppression's reason.
SUPPRESSED_PREFIX = "suppressed by the hub: "

# Hard bounces suppress at once; soft ones count toward the account's N-in-M days rule.
HARD_TYPES = frozenset({T.NOT_EXIST, T.INVALID, T.FORMAT_ERROR})
SOFT_TYPES = frozenset({T.OVER_QUOTA, T.USER_REJECT})


def status_code(text: str) -> str:
    """The first enhanced status code (RFC 3463) in a reply, e.g. "5.1.1", or ""."""
    match = _STATUS.search(text)
    return f"{match.group(1)}.{match.group(2)}" if match else ""


def failure_type(code: int | None, text: str) -> int:
    """The FailureType for a refusal. `code` None with no enhanced status code in the text
    means the server was not reached (a DSN's text carries its own status code)."""
    if text.startswith(SUPPRESSED_PREFIX):
        return T.COMPLAINT if "complaint" in text else T.BLACKLIST
    enhanced = status_code(text)
    if code is None and not enhanced:
        return T.CONNECT_ERROR
    for kind, pattern in _TABLE:
        if pattern.search(text):
            return kind
    if enhanced:
        kind = STATUS_CODES.get(enhanced.partition(".")[2])
        if kind is not None:
            return kind
    if code == 553:
        return T.INVALID     # RFC 5321: "mailbox name not allowed"
    if code == 552:
        return T.OVER_QUOTA  # RFC 5321: "exceeded storage allocation"
    return T.REFUSED


def is_permanent(code: int | None, text: str) -> bool:
    """A 5xx reply, or (no code: a DSN's text) a 5.x.x status."""
    if code is not None:
        return 500 <= code < 600
    return status_code(text).startswith("5")


def is_hard_bounce(code: int | None, text: str) -> bool:
    """A permanent 'this address cannot receive mail': the recipient should be suppressed."""
    return (code is not None or bool(status_code(text))) and is_permanent(code, text) \
        and failure_type(code, text) in HARD_TYPES


def is_soft_bounce(kind: int | None) -> bool:
    """A failure about the recipient that may pass (mailbox full, the recipient refusing
    us): counted toward the account's soft-bounce rule, never suppressed at once."""
    return kind in SOFT_TYPES
