"""Every refusal the send API can give (hub.sending.REFUSALS): the HTTP status, the JSON
body (`code`, the original system's `msg`, the stable `error`), and that a refused request
leaves nothing behind: no SendLog row, no queued task, nothing at the SMTP server.

Over 400 lines on purpose: one table of every refusal and the test that walks it belong
together, so a new refusal cannot be added without its row."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from api.tests.test_send_api import assert_nothing_written, good_fields, post
from hub.models import ApiRateCounter, SendLog, Site, Suppression
from hub.sending import REFUSALS

# error -> (HTTP status, msg). Written out rather than read from REFUSALS: the messages are
# the PHP system's and integrators match on them, so a change must break a test.
EXPECTED: dict[str, tuple[int, str]] = {
    "bad_request": (400, "请求格式错误"),
    "unknown_action": (400, "未知的操作"),
    "appid_required": (400, "appid 不能为空"),
    "appsecret_required": (400, "appsecret 不能为空"),
    "invalid_credentials": (401, "应用不存在"),
    "app_disabled": (403, "应用不可用"),
    "no_smtp_server": (503, "应用未绑定邮件服务"),
    "smtp_server_disabled": (503, "邮件服务不可用"),
    "to_required": (400, "收件人不能为空"),
    "subject_required": (400, "主题不能为空"),
    "message_required": (400, "内容不能为空"),
    "invalid_address": (400, "邮件地址无效"),
    "invalid_field": (400, "参数无效"),
    "header_injection": (400, "参数不能包含换行符"),
    "too_many_recipients": (413, "收件人过多"),
    "too_large": (413, "内容过大"),
    "id_required": (400, "id 不能为空"),
    "not_found": (404, "邮件不存在"),
    "ip_blocked": (403, "IP 已被禁止访问"),
    "ip_not_allowed": (403, "IP 不在应用的白名单内"),
    "rate_limited": (429, "请求过于频繁，请稍后再试"),
    "recipient_suppressed": (400, "收件人已被屏蔽（曾退信）"),
    "idempotency_conflict": (409, "Idempotency-Key 已用于不同的请求"),
}


@dataclass
class Case:
    error: str
    fields: dict = field(default_factory=dict)  # overrides on good_fields(); None removes a field
    fmt: str = "form"
    url: str = "/api.php"
    raw: tuple[bytes, str] | None = None  # (body, content type) sent exactly as given
    settings: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)  # extra request META (HTTP_...)


def case(id: str, error: str, **kwargs) -> pytest.param:
    return pytest.param(Case(error, **kwargs), id=id)


SMALL = {"HUB_MAX_RECIPIENTS": 3}
CRLF_BCC = "\r\nBcc: victim@example.net"

CASES = [
    # action
    case("action-missing-compat", "unknown_action", fields={"action": None}),
    case("action-blank-compat", "unknown_action", fields={"action": "  "}),
    case("action-unknown", "unknown_action", fields={"action": "delete"}),
    case("action-unknown-v1", "unknown_action", fields={"action": "sendmail"}, url="/api/v1/send", fmt="json"),
    # credentials
    case("appid-missing", "appid_required", fields={"appid": None}),
    case("appid-empty", "appid_required", fields={"appid": ""}),
    case("appid-blank", "appid_required", fields={"appid": "   "}, fmt="json"),
    case("appsecret-missing", "appsecret_required", fields={"appsecret": None}),
    case("appsecret-empty", "appsecret_required", fields={"appsecret": ""}, fmt="multipart"),
    case("appid-unknown", "invalid_credentials", fields={"appid": "999999"}),
    case("appsecret-wrong", "invalid_credentials", fields={"appsecret": "not-the-secret"}),
    case("appid-letters", "invalid_credentials", fields={"appid": "abc"}),
    case("appid-negative", "invalid_credentials", fields={"appid": "-1000"}),
    case("appid-float", "invalid_credentials", fields={"appid": "1000.0"}),
    case("appid-huge", "invalid_credentials", fields={"appid": "9" * 40}),
    case("appid-json-number-unknown", "invalid_credentials", fields={"appid": 999999}, fmt="json"),
    # required content
    case("to-missing", "to_required", fields={"to": None}),
    case("to-empty", "to_required", fields={"to": ""}, fmt="multipart"),
    case("to-blank", "to_required", fields={"to": "  "}),
    case("to-null", "to_required", fields={"to": None}, fmt="json"),
    case("subject-empty", "subject_required", fields={"subject": ""}),
    case("subject-blank", "subject_required", fields={"subject": " \t "}, fmt="json"),
    case("message-empty", "message_required", fields={"message": ""}),
    case("message-blank", "message_required", fields={"message": "   "}, fmt="multipart"),
    # addresses
    case("to-non-ascii-local-part", "invalid_address", fields={"to": "用户@example.com"}),
    case("to-no-at", "invalid_address", fields={"to": "alice.example.com"}),
    case("to-garbage", "invalid_address", fields={"to": "garbage"}),
    case("to-punctuation", "invalid_address", fields={"to": ";;;"}),
    case("to-empty-brackets", "invalid_address", fields={"to": "<>"}),
    case("to-no-local-part", "invalid_address", fields={"to": "@example.com"}),
    case("to-no-domain", "invalid_address", fields={"to": "alice@"}),
    case("to-two-ats", "invalid_address", fields={"to": "alice@@example.com"}),
    # email.utils.getaddresses drops the spaces in these and yields a different address
    # (alice@example.com, alice@example.comgarbage): it must be refused, not "corrected".
    case("to-space-in-domain", "invalid_address", fields={"to": "alice@exa mple.com"}),
    case("to-trailing-garbage", "invalid_address", fields={"to": "alice@example.com garbage"}),
    case("to-one-bad-in-list", "invalid_address", fields={"to": "a@example.com, garbage"}),
    case("to-one-bad-in-json-list", "invalid_address", fields={"to": ["a@example.com", "nope"]}, fmt="json"),
    case("to-name-only", "invalid_address", fields={"to": '"张三" <>'}),
    # header injection: CR, LF or NUL in anything that becomes a header
    case("subject-crlf", "header_injection", fields={"subject": "Hi" + CRLF_BCC}),
    case("subject-lf", "header_injection", fields={"subject": "Hi\nX-Evil: 1"}),
    case("subject-cr", "header_injection", fields={"subject": "Hi\rX-Evil: 1"}),
    case("subject-nul", "header_injection", fields={"subject": "Hi\x00there"}),
    case("to_name-crlf", "header_injection", fields={"to_name": "张三" + CRLF_BCC}),
    case("from_name-crlf", "header_injection", fields={"from_name": "客服" + CRLF_BCC}),
    case("to-crlf", "header_injection", fields={"to": "alice@example.com" + CRLF_BCC}),
    case("to-lf", "header_injection", fields={"to": "alice@example.com\nbob@example.com"}),
    case("cc-crlf", "header_injection", fields={"cc": "cc@example.com" + CRLF_BCC}),
    case("reply_to-crlf", "header_injection", fields={"reply_to": "r@example.com" + CRLF_BCC}),
    *[case(f"subject-crlf-{fmt}", "header_injection", fields={"subject": "Hi" + CRLF_BCC}, fmt=fmt)
      for fmt in ("multipart", "json")],
    *[case(f"to-crlf-{fmt}", "header_injection", fields={"to": "alice@example.com" + CRLF_BCC}, fmt=fmt)
      for fmt in ("multipart", "json")],
    # idempotency keys: one line, at most 255 characters
    case("idempotency-key-too-long", "invalid_field", headers={"HTTP_IDEMPOTENCY_KEY": "k" * 256}),
    case("request_id-newline", "invalid_field", fields={"request_id": "abc\ndef"}),
    case("request_id-nul-json", "invalid_field", fields={"request_id": "abc\x00"}, fmt="json"),
    # NUL in a body
    case("message-nul", "invalid_field", fields={"message": "<p>a\x00b</p>"}),
    case("message-nul-json", "invalid_field", fields={"message": "<p>a\x00b</p>"}, fmt="json"),
    case("text-nul", "invalid_field", fields={"text": "a\x00b"}, fmt="json"),
    # JSON of the wrong type
    case("json-to-object", "invalid_field", fields={"to": {"addr": "a@example.com"}}, fmt="json"),
    case("json-to-bool", "invalid_field", fields={"to": True}, fmt="json"),
    case("json-to-list-of-numbers", "invalid_field", fields={"to": [1, 2]}, fmt="json"),
    case("json-subject-object", "invalid_field", fields={"subject": {"zh": "主题"}}, fmt="json"),
    case("json-subject-bool", "invalid_field", fields={"subject": False}, fmt="json"),
    case("json-subject-list", "invalid_field", fields={"subject": ["a", "b"]}, fmt="json"),
    case("json-message-object", "invalid_field", fields={"message": {}}, fmt="json"),
    case("json-appsecret-bool", "invalid_field", fields={"appsecret": True}, fmt="json"),
    case("json-from_name-float", "invalid_field", fields={"from_name": 1.5}, fmt="json"),
    # malformed bodies
    case("json-malformed", "bad_request", raw=(b'{"appid": "1000", ', "application/json")),
    case("json-array", "bad_request", raw=(b'[{"appid": "1000"}]', "application/json")),
    case("json-string", "bad_request", raw=(b'"send"', "application/json")),
    case("json-number", "bad_request", raw=(b"42", "application/json")),
    case("json-invalid-utf8", "bad_request", raw=(b'{"subject": "\xff\xfe"}', "application/json")),
    case("json-array-v1", "bad_request", raw=(b"[]", "application/json"), url="/api/v1/send"),
    case("unsupported-content-type", "bad_request", raw=(b"appid=1000", "text/plain")),
    case("multipart-no-boundary", "bad_request", raw=(b"--x\r\n\r\n", "multipart/form-data")),
    case("too-many-form-fields", "bad_request",
         fields={f"extra{i}": "x" for i in range(20)}, settings={"DATA_UPLOAD_MAX_NUMBER_FIELDS": 10}),
    # too many recipients
    case("to-over-limit", "too_many_recipients", settings=SMALL,
         fields={"to": "a@example.com, b@example.com, c@example.com, d@example.com"}),
    case("to-over-limit-json-list", "too_many_recipients", settings=SMALL, fmt="json",
         fields={"to": ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]}),
    case("to-cc-bcc-over-limit", "too_many_recipients", settings=SMALL,
         fields={"to": "a@example.com, b@example.com", "cc": "c@example.com", "bcc": "d@example.com"}),
    case("to-far-over-limit", "too_many_recipients", settings=SMALL,
         fields={"to": ", ".join(f"u{i}@example.com" for i in range(500))}),
    case("to-over-default-limit", "too_many_recipients",
         fields={"to": ", ".join(f"u{i}@example.com" for i in range(51))}),
    # too large
    case("subject-too-long", "too_large", fields={"subject": "主" * 21}, settings={"HUB_MAX_SUBJECT_CHARS": 20}),
    case("to_name-too-long", "too_large", fields={"to_name": "名" * 11}, settings={"HUB_MAX_NAME_CHARS": 10}),
    case("from_name-too-long", "too_large", fields={"from_name": "名" * 11}, settings={"HUB_MAX_NAME_CHARS": 10}),
    # The body limit is in bytes: 34 Chinese characters are 102 bytes of UTF-8.
    case("message-too-large", "too_large", fields={"message": "中" * 34}, settings={"HUB_MAX_BODY_BYTES": 100}),
    case("text-too-large", "too_large", fields={"text": "x" * 101}, settings={"HUB_MAX_BODY_BYTES": 100}),
    case("request-too-large", "too_large", fields={"message": "x" * 2000}, settings={"HUB_MAX_REQUEST_BYTES": 1000}),
    case("request-too-large-json", "too_large", fields={"message": "x" * 2000}, fmt="json",
         settings={"HUB_MAX_REQUEST_BYTES": 1000}),
    case("request-too-large-multipart", "too_large", fields={"message": "x" * 2000}, fmt="multipart",
         settings={"HUB_MAX_REQUEST_BYTES": 1000}),
    # Django's own body limit, should it ever be the lower one, still answers our 413.
    case("request-over-django-limit", "too_large", fields={"message": "x" * 2000},
         settings={"DATA_UPLOAD_MAX_MEMORY_SIZE": 1000}),
    # status look-ups (more in test_status_api.py)
    case("status-id-missing", "id_required", fields={"action": "status"}),
    case("status-id-unknown", "not_found", fields={"action": "status", "id": "99999999"}),
]


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    return smtp_sink, make_app(make_server(smtp_sink))


def assert_refused(response, error: str) -> dict:
    http_status, msg = EXPECTED[error]
    assert response.status_code == http_status, response.content
    body = response.json()
    assert body["code"] == (403 if error == "unknown_action" else -1)
    assert body["msg"] == msg
    assert body["error"] == error
    # A refusal never looks like an accepted message.
    assert set(body) <= {"code", "msg", "error", "detail"}
    return body


@pytest.mark.parametrize("c", CASES)
def test_refusal(client, settings, hub, c: Case):
    sink, p = hub
    for name, value in c.settings.items():
        setattr(settings, name, value)
    if c.raw is not None:
        r = client.post(c.url, c.raw[0], content_type=c.raw[1], **c.headers)
    else:
        # sync=1: were the request wrongly accepted, it would reach the sink at once.
        r = post(client, c.url, good_fields(p.creds, **{"sync": "1", **c.fields}), c.fmt, **c.headers)
    assert_refused(r, c.error)
    assert_nothing_written(sink)


# Refusals that need more set-up than a request: each has its own test below.
TESTED_SEPARATELY = {"app_disabled", "no_smtp_server", "smtp_server_disabled", "ip_blocked", "ip_not_allowed",
                     "rate_limited", "recipient_suppressed", "idempotency_conflict"}


def test_every_refusal_has_a_case():
    """Each refusal listed here has a test in this file, and its status and message are
    still what REFUSALS says. (Refusals of features with their own test files, such as
    attachments, are theirs to cover.)"""
    covered = {param.values[0].error for param in CASES} | TESTED_SEPARATELY
    assert covered == set(EXPECTED)
    assert {error: REFUSALS.get(error) for error in EXPECTED} == EXPECTED


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize("url", ["/api.php", "/api/v1/send"])
def test_wrong_method(client, hub, method, url):
    """Only POST sends; other methods still get the API's body shape."""
    sink, p = hub
    r = getattr(client, method)(url, good_fields(p.creds) if method == "get" else None)
    assert r.status_code == 405
    assert "POST" in r["Allow"] and "GET" not in r["Allow"]
    body = r.json()
    assert (body["code"], body["error"]) == (-1, "method_not_allowed") and body["msg"]
    assert_nothing_written(sink)


# --- the app's own state ------------------------------------------------------------------

@pytest.mark.parametrize("state,error", [
    ("app_disabled", "app_disabled"),
    ("no_servers", "no_smtp_server"),
    ("only_server_disabled", "smtp_server_disabled"),
    ("all_servers_disabled", "smtp_server_disabled"),
])
@pytest.mark.parametrize("url", ["/api.php", "/api/v1/send"])
def test_app_state_refusals(client, smtp_sink, make_server, make_app, state, error, url):
    if state == "app_disabled":
        p = make_app(make_server(smtp_sink), enabled=False)
    elif state == "no_servers":
        p = make_app()
    elif state == "only_server_disabled":
        p = make_app(make_server(smtp_sink, enabled=False))
    else:
        p = make_app(make_server(smtp_sink, enabled=False), make_server(smtp_sink, enabled=False))
    r = post(client, url, good_fields(p.creds))
    assert_refused(r, error)
    assert_nothing_written(smtp_sink)


def test_state_refusal_also_with_sync(client, smtp_sink, make_server, make_app):
    """sync=1 must not bypass the checks and deliver anyway."""
    p = make_app(make_server(smtp_sink, enabled=False))
    assert_refused(post(client, "/api.php", good_fields(p.creds, sync="1")), "smtp_server_disabled")
    assert_nothing_written(smtp_sink)


# --- wrong AppID and wrong secret look the same ----------------------------------------------

def test_bad_credentials_are_indistinguishable(client, smtp_sink, make_server, make_app):
    server = make_server(smtp_sink)
    p = make_app(server)
    other = make_app(server, name="另一个应用")
    disabled = make_app(server, name="停用的应用", enabled=False)
    attempts = {
        "unknown appid": {"appid": "999999", "appsecret": p.secret},
        "wrong secret": {"appid": p.creds["appid"], "appsecret": "x" * len(p.secret)},
        "another app's secret": {"appid": p.creds["appid"], "appsecret": other.secret},
        "non-numeric appid": {"appid": "abc", "appsecret": p.secret},
        # A disabled app with the wrong secret must not reveal that it exists.
        "disabled app, wrong secret": {"appid": disabled.creds["appid"], "appsecret": "nope"},
    }
    responses = {name: post(client, "/api.php", good_fields(creds)) for name, creds in attempts.items()}
    first = responses["unknown appid"]
    assert_refused(first, "invalid_credentials")
    for name, r in responses.items():
        assert (r.status_code, r.content) == (first.status_code, first.content), name
        assert r.get("Content-Type") == first.get("Content-Type"), name
    assert_nothing_written(smtp_sink)


def test_only_the_refused_request_is_dropped(client, hub, run_queue):
    """Refusals in between do not disturb an accepted message (sanity for the checks above)."""
    sink, p = hub
    assert post(client, "/api.php", good_fields(p.creds, to="bad")).status_code == 400
    assert post(client, "/api.php", good_fields(p.creds)).json()["code"] == 0
    assert post(client, "/api.php", good_fields(p.creds, subject="")).status_code == 400
    assert SendLog.objects.count() == 1 and OrmQ.objects.count() == 1
    assert run_queue() == 1
    assert len(sink.messages) == 1



# --- who may call ------------------------------------------------------------------------

@pytest.mark.parametrize("blocklist", ["127.0.0.1", "127.0.0.0/8", "10.9.9.9\n127.0.0.1", "::1, 127.0.0.1"])
@pytest.mark.parametrize("creds_ok", [True, False])
def test_blocked_ip(client, hub, blocklist, creds_ok):
    """The blocklist is checked before the credentials: a blocked caller learns nothing."""
    sink, p = hub
    site = Site.load()
    site.ip_blocklist = blocklist
    site.save()
    creds = p.creds if creds_ok else {"appid": "999999", "appsecret": "x"}
    assert_refused(post(client, "/api.php", good_fields(creds, sync="1")), "ip_blocked")
    assert_nothing_written(sink)


def test_blocklist_uses_the_client_ip_behind_a_trusted_proxy(client, hub):
    sink, p = hub
    site = Site.load()
    site.client_ip_mode = Site.ClientIpMode.X_FORWARDED_FOR
    site.ip_blocklist = "203.0.113.0/24"
    site.save()
    r = post(client, "/api.php", good_fields(p.creds), REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert_refused(r, "ip_blocked")
    assert_nothing_written(sink)
    # Another client through the same proxy is served.
    r = post(client, "/api.php", good_fields(p.creds), REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert r.json()["code"] == 0


@pytest.mark.parametrize("action", ["send", "status"])
def test_ip_not_in_apps_allowlist(client, smtp_sink, make_server, make_app, action):
    p = make_app(make_server(smtp_sink), allowed_ips="10.0.0.0/8\n192.0.2.1")
    fields = good_fields(p.creds, action=action, id="1", sync="1")
    assert_refused(post(client, "/api.php", fields), "ip_not_allowed")
    assert_nothing_written(smtp_sink)
    # From an allowed address the same request goes through.
    r = post(client, "/api.php", good_fields(p.creds), REMOTE_ADDR="10.1.2.3")
    assert r.json()["code"] == 0


def test_rate_limited(client, hub):
    sink, p = hub
    p.app.rate_limit_per_minute = 2
    p.app.save()
    # Fill this minute's and the next minute's windows, so the answer cannot depend on the
    # clock ticking over during the test.
    window = timezone.now().replace(second=0, microsecond=0)
    for start in (window, window + datetime.timedelta(minutes=1)):
        ApiRateCounter.objects.create(app=p.app, window_start=start, count=2)
    r = post(client, "/api.php", good_fields(p.creds, sync="1"))
    assert_refused(r, "rate_limited")
    assert 1 <= int(r["Retry-After"]) <= 60
    assert_nothing_written(sink)


def test_rate_limit_counts_requests(client, hub):
    _sink, p = hub
    p.app.rate_limit_per_minute = 1
    p.app.save()
    window = timezone.now().replace(second=0, microsecond=0)
    first = post(client, "/api.php", good_fields(p.creds))
    second = post(client, "/api.php", good_fields(p.creds))
    if timezone.now().replace(second=0, microsecond=0) != window:
        pytest.skip("the minute turned over between the two requests")  # the test above covers it
    assert first.json()["code"] == 0
    assert_refused(second, "rate_limited")
    assert SendLog.objects.count() == 1 and OrmQ.objects.count() == 1


@pytest.mark.parametrize("fields", [
    {"to": "gone@example.com"},
    {"to": "GONE@Example.COM"},
    {"to": "alice@example.com, \"走了\" <gone@example.com>"},
    {"cc": "gone@example.com"},
    {"bcc": "gone@example.com"},
])
def test_recipient_suppressed(client, hub, fields):
    sink, p = hub
    Suppression.objects.create(app=p.app, email="gone@example.com", reason="hard bounce", smtp_code=550)
    assert_refused(post(client, "/api.php", good_fields(p.creds, sync="1", **fields)), "recipient_suppressed")
    assert_nothing_written(sink)


def test_suppression_is_per_account(client, smtp_sink, make_server, make_app):
    from hub.models import Account

    server = make_server(smtp_sink)
    p, other = make_app(server), make_app(server, name="另一个应用", account=Account.objects.create(name="other"))
    Suppression.objects.create(app=other.app, email="alice@example.com")
    assert post(client, "/api.php", good_fields(p.creds)).json()["code"] == 0
    # An unsubscribe stops campaign mail only: a transactional message still goes.
    Suppression.objects.create(account=p.app.account, email="alice@example.com", cause="unsubscribe", bulk_only=True)
    assert post(client, "/api.php", good_fields(p.creds)).json()["code"] == 0


@pytest.mark.parametrize("how", ["header", "request_id"])
def test_idempotency_conflict(client, hub, how):
    sink, p = hub

    def send(subject: str):
        if how == "header":
            return post(client, "/api.php", good_fields(p.creds, subject=subject), HTTP_IDEMPOTENCY_KEY="order-42")
        return post(client, "/api.php", good_fields(p.creds, subject=subject, request_id="order-42"))

    first = send("第一封")
    assert first.json()["code"] == 0
    assert_refused(send("不同的主题"), "idempotency_conflict")
    assert SendLog.objects.count() == 1 and OrmQ.objects.count() == 1
    assert SendLog.objects.get().subject == "第一封"
    assert sink.messages == []
