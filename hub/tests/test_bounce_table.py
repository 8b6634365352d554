"""The synchronous classifier (hub.delivery.bounces) against real reply wordings of the
providers the platform's customers send to. Each row says where the wording came from;
addresses, IPs and ids in them are replaced by documentation values. (The wordings are short
SMTP replies as published by the providers or collected by bounce-parsing projects.)"""

from __future__ import annotations

import pytest

from hub.delivery import bounces
from hub.models import FailureType as T

SISIMAI = "sisimai go-sisimai rhost/"  # BSD-2, github.com/sisimai/go-sisimai (comments quote the replies)

ROWS = [
    # --- QQ mail (mx*.qq.com) and Tencent Exmail (mx*.exmail.qq.com) -------------------------
    # service.mail.qq.com/detail/122/169 (via sisimai rhost/for-tencent.go); qqmailbox.com/transceivers/169.html
    (550, "Mailbox not found. http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=20022&&no=1000728", T.NOT_EXIST),
    # Exmail wording of the same refusal (hub/tests/test_suppression.py kept it; icoremail.vip list)
    (550, "Mailbox not found or access denied", T.NOT_EXIST),
    # service.mail.qq.com/detail/122/166: a per-recipient receiving rate limit, not a missing user
    (550, "Mailbox unavailable or access denied [MMpIzyOiQWyHpPO] http://service.mail.qq.com", T.REFUSED),
    # service.mail.qq.com/detail/122/171 (sisimai for-tencent.go)
    (550, "Ts04 Mail content denied. http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=20022", T.SPAM_CONTENT),
    # qqmailbox.com/transceivers/169.html: "550 Error: content rejected"
    (550, "Error: content rejected.http://mail.qq.com/zh_CN/help/content/rejectedmail.html", T.SPAM_CONTENT),
    # service.mail.qq.com/detail/122/66 (sisimai): the sending IP, not the content
    (550, "Suspected spam ip, please try later", T.REFUSED),
    # service.mail.qq.com/detail/122/92 (sisimai): the recipient refuses this sender
    (550, "Mail is rejected by recipients", T.USER_REJECT),
    # qqmailbox.com/transceivers/169.html: "501 Bad address syntax"; service.mail.qq.com/detail/122/167
    (501, "Bad address syntax. http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=20022&&no=1000730", T.FORMAT_ERROR),
    # qqmailbox.com/transceivers/169.html: "收件人空间不足" (the recipient's mailbox is full)
    (552, "收件人空间不足", T.OVER_QUOTA),
    # sisimai for-tencent.go: "is a deactivated mailbox" (QQ help 1000742)
    (550, "5.1.1 user@qq.com is a deactivated mailbox", T.NOT_EXIST),
    # service.mail.qq.com/detail/122/172 (sisimai)
    (451, "Ip frequency limited [Ts01]", T.REFUSED),
    # --- NetEase 163.com / 126.com ------------------------------------------------------------
    # NetEase postmaster codes as reprinted at biecuoliao.com/pa/MBRrwEM.html ("451 DT:SPM")
    (554, ("DT:SPM 163 mx14,QMCowEBpG1bKkqxi8T3kDQ--.42741S2 1655478988, please see "
          "http://mail.163.com/help/help_spam_16.htm?ip=192.0.2.1"), T.SPAM_CONTENT),
    # biecuoliao.com: "450 DT:RBL 发信IP位于一个或多个RBL里" (the sender's IP on an RBL)
    (550, "DT:RBL 192.0.2.1 in rbl http://www.rbls.org", T.REFUSED),
    # icoremail.vip (Coremail, the system behind 163/126) bounce list: "User not found"
    (550, "User not found: recipient@163.com", T.NOT_EXIST),
    # icoremail.vip: "User suspended" (dormant account, mysdqq.cn: 用户由于长时间未登录处于休眠状态)
    (550, "User suspended: recipient@126.com", T.NOT_EXIST),
    # icoremail.vip: "User rejected" / "User in blacklist" (the recipient blocks the sender)
    (550, "User rejected", T.USER_REJECT),
    (553, "User in blacklist", T.USER_REJECT),
    # emailhost.com.cn: "邮件过大: exceeded mailsize limit" (NetEase wording of the size limit)
    (552, "Requested mail action aborted: exceeded mailsize limit", T.REFUSED),
    # biecuoliao.com: "451 MI:SFQ 发信人在15分钟内的发信数量超过限制" (sender frequency)
    (451, "MI:SFQ 163 mx3, sender frequency limited", T.REFUSED),
    # --- Sina (sina.com / sina.cn) --------------------------------------------------------------
    # blog.sina.com.cn/s/blog_8dc13ec50101fxxr.html: Sina's reply list
    (550, "mailbox unavailable. (邮箱不存在)", T.NOT_EXIST),
    (550, "user is locked", T.NOT_EXIST),
    (550, "black ip", T.REFUSED),
    (552, "message rejected by anti-spam engine", T.SPAM_CONTENT),
    (552, "message is too long", T.REFUSED),
    (554, "rbl deny", T.REFUSED),
    # --- Aliyun mail (mxw.mxhichina.com) ----------------------------------------------------------
    # sh-aliyun.com product page: "554 RCPT (account) dosn't exist" [sic]
    (554, "RCPT (recipient@example.cn) dosn't exist", T.NOT_EXIST),
    # sh-aliyun.com: "552 mailbox is full"
    (552, "mailbox is full", T.OVER_QUOTA),
    # sh-aliyun.com: "554 Reject by content spam"
    (554, "Reject by content spam", T.SPAM_CONTENT),
    # sh-aliyun.com: "554 Reject by behaviour spam" (the sender's behaviour, not the content)
    (554, "Reject by behaviour spam", T.REFUSED),
    # yuntunpuzi.com/aliyun/745: "Sorry, I couldn't find any host named kail.com.cn. (#5.1.2)"
    (None, "Sorry, I couldn't find any host named kail.com.cn. (#5.1.2)", T.INVALID),
    # yuntunpuzi.com/aliyun/745: "Quota exceed the hard limit for user"
    (552, "Quota exceed the hard limit for user", T.OVER_QUOTA),
    # --- Gmail -------------------------------------------------------------------------------------
    # support.google.com/a/answer/3726730 (quoted by many, e.g. github duydaihoc/demo3 QUICK_TEST_550_ERROR.md)
    (550, ("5.1.1 The email account that you tried to reach does not exist. Please try double-checking the "
          "recipient's email address for typos or unnecessary spaces."), T.NOT_EXIST),
    # sisimai rhost/for-google.go: "452 4.2.2 The email account that you tried to reach is over quota"
    (452, "4.2.2 The email account that you tried to reach is over quota.", T.OVER_QUOTA),
    # Google's reply list: "550 5.2.1 The email account that you tried to reach is disabled"
    (550, "5.2.1 The email account that you tried to reach is disabled.", T.NOT_EXIST),
    # sisimai for-google.go (badreputation / blocked)
    (550, ("5.7.1 Our system has detected that this message is likely suspicious due to the very low "
          "reputation of the sending IP address."), T.REFUSED),
    (550, ("5.7.1 Our system has detected that this message is likely unsolicited mail. To reduce the "
          "amount of spam sent to Gmail, this message has been blocked."), T.SPAM_CONTENT),
    # sisimai for-google.go (authfailure)
    (550, ("5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all "
          "senders to authenticate with either SPF or DKIM."), T.REFUSED),
    # sisimai for-google.go (mesgtoobig)
    (552, "5.3.4 Your message exceeded Google's message size limits.", T.REFUSED),
    # sisimai set-of-emails email-google-02.eml (a remote server's reply relayed by Gmail)
    (550, "550 5.1.1 user unknown (UserSearch) (state 14).", T.NOT_EXIST),
    # --- Outlook.com / Hotmail / Exchange Online -----------------------------------------------------
    # learn.microsoft.com NDR list / MicrosoftDocs SupportArticles-docs non-delivery-reports-in-exchange-online.md
    (550, ("5.5.0 Requested action not taken: mailbox unavailable (S2017062302). [DM6NAM12FT011.eop-nam12.prod.protection."
          "outlook.com]"), T.NOT_EXIST),
    (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", T.NOT_EXIST),
    (550, "5.4.1 Recipient address rejected: Access denied. AS(201806281)", T.NOT_EXIST),
    # sisimai rhost/for-microsoft.go (blocked: "part of their network is on our block list (S3150)")
    (550, ("5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service "
          "provider since part of their network is on our block list (S3150)."), T.REFUSED),
    # sisimai for-microsoft.go: "5.7.606-649 Access denied, banned sending IP"
    (550, "5.7.606 Access denied, banned sending IP [192.0.2.1]", T.REFUSED),
    # sisimai set-of-emails email-exchange2007-02.eml (Exchange 2007 DSN diagnostic)
    (550, "5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient", T.REFUSED),
    # Exchange: mailbox full (MicrosoftDocs NDR table: 5.2.2 "mailbox full")
    (552, "5.2.2 STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded", T.OVER_QUOTA),
    # --- Yahoo / AOL ------------------------------------------------------------------------------
    # sisimai rhost/for-yahooinc.go (userunknown)
    (554, ("delivery error: dd This user doesn't have a yahoo.com account (recipient@yahoo.com) [0] - "
          "mta1023.mail.gq1.yahoo.com"), T.NOT_EXIST),
    (552, "1 Requested mail action aborted, mailbox not found", T.NOT_EXIST),
    # sisimai for-yahooinc.go (suspend)
    (554, "delivery error: dd recipient@yahoo.com is no longer valid. [-20] - mta1234.mail.ne1.yahoo.com", T.NOT_EXIST),
    # sisimai for-yahooinc.go (blocked)
    (553, ("5.7.1 [BL21] Connections will not be accepted from 192.0.2.25, because the ip is in Spamhaus's list; "
          "see http://postmaster.yahoo.com/550-bl23.html"), T.REFUSED),
    # sisimai for-yahooinc.go (rejected; temporary)
    (421, ("4.7.0 [TSS04] Messages from 192.0.2.25 temporarily deferred due to unexpected volume or user "
          "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"), T.REFUSED),
    # sisimai for-yahooinc.go (policyviolation)
    (554, "5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
     T.REFUSED),
    # sisimai for-yahooinc.go (speeding)
    (450, "User is receiving mail too quickly", T.REFUSED),
    # --- the MTAs' own wordings (RFC 3463 codes, Postfix, Exim) ------------------------------------
    # Postfix virtual(8) refusal; sisimai set-of-emails email-exim-02.eml for Exim
    (550, "5.1.1 <a@b.example>: Recipient address rejected: User unknown in virtual mailbox table", T.NOT_EXIST),
    (550, "5.2.1 <sabatora@example.jp>... User Unknown", T.NOT_EXIST),
    (None, "5.4.4 Host or domain name not found. Name service error for name=example.invalid type=MX", T.INVALID),
    (None, "cannot connect to 127.0.0.1:25: ConnectionRefusedError", T.CONNECT_ERROR),
    # the hub's own claim-time suppression (hub.delivery.attempt)
    (None, bounces.SUPPRESSED_PREFIX + "hard_bounce", T.BLACKLIST),
    (None, bounces.SUPPRESSED_PREFIX + "complaint", T.COMPLAINT),
]


@pytest.mark.parametrize("code,text,expected", ROWS, ids=[f"{i}-{r[2].name}" for i, r in enumerate(ROWS)])
def test_provider_replies(code, text, expected):
    assert bounces.failure_type(code, text) == expected


@pytest.mark.parametrize("code,text,hard", [
    (550, ROWS[0][1], True),                           # QQ: no such mailbox
    (554, "delivery error: dd This user doesn't have a yahoo.com account", True),
    (501, "Bad address syntax", True),                 # malformed address: never deliverable
    (550, "Mailbox unavailable or access denied", False),  # QQ rate limit
    (552, "mailbox is full", False),                   # soft: counted, not suppressed at once
    (450, "4.1.1 User unknown (greylisted)", False),   # temporary
    (550, "5.7.26 unauthenticated sender: SPF", False),
])
def test_hard_bounces(code, text, hard):
    assert bounces.is_hard_bounce(code, text) is hard


def test_soft_types_are_about_the_recipient():
    assert bounces.is_soft_bounce(T.OVER_QUOTA) and bounces.is_soft_bounce(T.USER_REJECT)
    for kind in (T.REFUSED, T.SPAM_CONTENT, T.CONNECT_ERROR, T.NOT_EXIST, None):
        assert not bounces.is_soft_bounce(kind)


def test_status_code():
    assert bounces.status_code("550 5.1.1 <a@b> unknown") == "5.1.1"
    assert bounces.status_code("#550 5.2.3 RESOLVER") == "5.2.3"
    assert bounces.status_code("version 1.2.3.4 here") == ""
