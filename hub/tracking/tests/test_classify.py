"""Machine opens and clicks: each rule of hub.tracking.classify on real user agents."""

from __future__ import annotations

import pytest

from hub.tracking.classify import Facts, burst_threshold, bursts, machine_reason

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
IPHONE_MAIL = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
QQ_MAIL = ("Mozilla/5.0 (Linux; Android 13; PGT-AN10) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/98.0 "
           "Mobile Safari/537.36 MicroMessenger/8.0.40 QQMail/6.5.6")
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"

CASES = [
    # (user agent, ip, head, seconds after delivery, expected reason)
    (CHROME, "114.114.114.114", False, 3600, ""),
    (IPHONE_MAIL, "223.104.1.1", False, 3600, ""),
    (QQ_MAIL, "120.204.1.1", False, 60, ""),
    (CHROME, "114.114.114.114", True, 3600, "head_request"),
    ("", "114.114.114.114", False, 3600, "no_user_agent"),
    (GMAIL_PROXY, "66.249.84.1", False, 3600, "gmail_proxy"),
    (YAHOO_PROXY, "98.136.1.1", False, 3600, "yahoo_proxy"),
    ("Mozilla/5.0", "104.28.1.1", False, 3600, "apple_mpp"),  # MPP's UA through a partner CDN
    (IPHONE_MAIL, "17.58.1.1", False, 3600, "apple_mpp"),  # Apple's own network
    (CHROME, "40.107.1.1", False, 3600, "microsoft_eop"),
    (CHROME, "52.101.2.3", False, 3600, "microsoft_eop"),
    ("Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", "64.235.1.1", False, 3600, "scanner_agent"),
    ("python-requests/2.31.0", "1.2.3.4", False, 3600, "scanner_agent"),
    ("curl/8.4.0", "1.2.3.4", False, 3600, "scanner_agent"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "1.2.3.4", False, 3600,
     "scanner_agent"),
    (CHROME.replace("Chrome/120.0", "HeadlessChrome/120.0"), "1.2.3.4", False, 3600, "scanner_agent"),
    (CHROME, "114.114.114.114", False, 3, "too_soon"),
    (CHROME, "114.114.114.114", False, 9.9, "too_soon"),
    (CHROME, "114.114.114.114", False, 10, ""),
    (CHROME, "114.114.114.114", False, None, ""),  # delivery time unknown: no timing rule
    (GMAIL_PROXY, "66.249.84.1", True, 1, "head_request"),  # the first rule that matches names it
]


@pytest.mark.parametrize(("agent", "ip", "head", "after", "expected"), CASES)
def test_machine_reason(agent, ip, head, after, expected):
    assert machine_reason(Facts(agent, ip, head, after)) == expected


@pytest.mark.parametrize(("links", "threshold"), [(0, 2), (1, 2), (2, 2), (3, 3), (10, 3)])
def test_burst_threshold(links, threshold):
    assert burst_threshold(links) == threshold


@pytest.mark.parametrize(("clicks", "flagged"), [
    ([(0.0, 1), (0.5, 2), (1.0, 3)], {0, 1, 2}),  # three links in a second: a scanner
    ([(0.0, 1), (0.5, 1), (1.0, 1)], set()),  # one link thrice: a person clicking again
    ([(0.0, 1), (5.0, 2), (10.0, 3)], set()),  # three links, slowly: a person
    ([(0.0, 1), (30.0, 2), (30.5, 3), (31.0, 4)], {1, 2, 3}),
])
def test_bursts(clicks, flagged):
    assert bursts(clicks, 3, 2.0) == flagged
