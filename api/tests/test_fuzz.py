"""Bad-input fuzzing of the send API: a few thousand generated malformed requests (seeded,
so a failure reproduces) against /api.php and /api/v1/send, with valid and invalid
credentials mixed in: random field names and values, huge values, CR/LF and NUL, invalid
UTF-8 in form, multipart and JSON bodies, lone surrogates, wrong content types, nested JSON,
numbers, lists. Whatever arrives, the API never answers 500, always answers a JSON body
with `code` and `msg`, and a refused request writes nothing (no SendLog, no task, no
idempotency key). Whatever it accepted, a worker can deliver.

The targeted tests at the end pin down, one by one, each crash class the fuzzer found."""

from __future__ import annotations

import json
import random
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from django.db import connection
from django.test import Client
from django_q.models import OrmQ

from hub.delivery.outbox import deliver_batch
from hub.models import IdempotencyKey, SendLog

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = 20240607
REQUESTS = 3000
URLS = ("/api.php", "/api/v1/send")
KNOWN_FIELDS = ("action", "appid", "appsecret", "to", "subject", "message", "to_name", "from_name", "cc", "bcc",
                "reply_to", "text", "id", "sync", "request_id")
WRONG_TYPES = ("text/plain", "application/xml", "application/octet-stream", "", "multipart/form-data",
               "multipart/form-data; boundary=", "application/json; charset=latin-1",
               "application/x-www-form-urlencoded; charset=bogus", "application/json; charset=utf-16",
               "text/html; charset=utf-8", "application/x-www-form-urlencoded; charset=utf-16",
               "multipart/mixed; boundary=zzz", "application/javascript", "image/png", "*/*", ";;;",
               "application/json\r\nX-Injected: 1")
BOUNDARY = "----fuzzboundary7MA4YWxkTrZu0gW"
UNICODE_BITS = "测试主题你好世界😀🎉\u202e\u200b\u00e9\u0301\ufeff\uffff\u0000\u2028\u2029ß𝔘𝔫𝔦"
EMAILISH = ("alice@example.com", "a@b", "@", "a@", "<a@b.com>", '"x" <a@b.com>', "a@b.com,,,", "a@@b.com",
            "user@bücher.example", "用户@例子.公司", "a@b.com\r\nBcc: evil@example.com", "a b@c.com",
            "alice@example.com, bob@example.com", "x" * 300 + "@example.com", "\"unterminated <a@b.com>")


@dataclass
class Case:
    url: str
    body: bytes
    content_type: str
    method: str = "POST"
    extra: dict = field(default_factory=dict)
    note: str = ""

    def describe(self) -> str:
        return (f"{self.method} {self.url} [{self.content_type!r}] {self.note} "
                f"extra={ {k: v[:40] for k, v in self.extra.items()} } body={self.body[:160]!r}")


class Fuzzer:
    """Generates requests from one seed. `creds` is a working AppID/AppSecret pair."""

    def __init__(self, seed: int, creds: dict) -> None:
        self.rng = random.Random(seed)
        self.creds = creds

    # --- values -------------------------------------------------------------------------

    def text(self, json_ok: bool) -> str:
        rng = self.rng
        kind = rng.randrange(14)
        if kind == 0:
            return ""
        if kind == 1:
            return rng.choice([" ", "\t", "  \n ", "\u3000"])
        if kind == 2:
            return "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(1, 60)))
        if kind == 3:
            return "".join(rng.choice(UNICODE_BITS) for _ in range(rng.randrange(1, 30)))
        if kind == 4:
            return rng.choice(["x\r\nBcc: evil@example.com", "x\ny", "x\rX-Header: 1", "\r\n", "line1\r\n\r\nbody"])
        if kind == 5:
            return rng.choice(["\x00", "a\x00b", "alice@example.com\x00", "\x00" * 10])
        if kind == 6:
            size = rng.choice([1000, 5000, 70_000, 300_000])
            return rng.choice(["A", "测", "a@b.com,", "<p>", "\u00e9"]) * (size // 4)
        if kind == 7:
            return rng.choice(EMAILISH)
        if kind == 8:
            return rng.choice(["-1", "0", "1e309", "9" * 40, "1000", "0x3e8", "1000.0", " 1000 ", "１０００"])
        if kind == 9:
            return "".join(chr(rng.randrange(0, 32)) for _ in range(rng.randrange(1, 10)))
        if kind == 10 and json_ok:
            return rng.choice(["\ud800", "a\udfffb", "\udc80@example.com", "\ud83d"])
        if kind == 11:
            return rng.choice(["send", "status", "SEND", "delete", "", "send\x00", "send\r\n"])
        if kind == 12:
            return rng.choice(["1", "true", "yes", "0", "false"])
        return "<p>" + "".join(rng.choice(UNICODE_BITS + "abc<>&\"'") for _ in range(rng.randrange(1, 40))) + "</p>"

    def json_value(self, depth: int = 0):
        rng = self.rng
        kind = rng.randrange(12)
        if kind < 5:
            return self.text(json_ok=True)
        if kind == 5:
            return rng.choice([0, 1, -1, 1000, 10 ** rng.randrange(1, 40), -(10 ** 20), 2 ** 63, 2 ** 64 + 1])
        if kind == 6:
            return rng.choice([0.0, 1.5, -1e308, 1e308, 1e-320, 1000.0])
        if kind == 7:
            return rng.choice([True, False, None])
        if kind == 8 and depth < 4:
            return [self.json_value(depth + 1) for _ in range(rng.randrange(0, 5))]
        if kind == 9 and depth < 4:
            return {self.field_name(): self.json_value(depth + 1) for _ in range(rng.randrange(0, 4))}
        if kind == 10:
            return [rng.choice(EMAILISH) for _ in range(rng.randrange(0, 4))]
        return rng.choice([[], {}, [[]], {"a": {"b": {"c": [1, 2, 3]}}}])

    def field_name(self) -> str:
        rng = self.rng
        if rng.random() < 0.7:
            return rng.choice(KNOWN_FIELDS)
        return rng.choice(["", " to", "to ", "TO", "to[]", "appid[]", "a" * 300, "字段", "x\r\ny", "\x00",
                           "__proto__", "constructor", "sync ", "Idempotency-Key"])

    # --- requests -----------------------------------------------------------------------

    def fields(self, json_ok: bool) -> dict:
        rng = self.rng
        creds_kind = rng.random()
        if creds_kind < 0.5:
            creds = dict(self.creds)
        elif creds_kind < 0.65:
            creds = {"appid": self.creds["appid"], "appsecret": "wrong-" + self.text(json_ok)}
        elif creds_kind < 0.75:
            creds = {"appid": rng.choice(["999999", "0", "-1000", "abc", ""]), "appsecret": self.creds["appsecret"]}
        elif creds_kind < 0.85:
            creds = {}
        else:
            creds = {"appid": self.text(json_ok), "appsecret": self.text(json_ok)}
        fields = {"action": "send", **creds, "to": "alice@example.com", "subject": "fuzz", "message": "<p>hi</p>"}
        for _ in range(rng.randrange(0, 5)):
            op = rng.randrange(3)
            name = self.field_name()
            if op == 0:
                fields.pop(name, None)
            else:
                fields[name] = self.json_value() if json_ok and rng.random() < 0.4 else self.text(json_ok)
        return fields

    @staticmethod
    def _bytes(value) -> bytes:
        return str(value).encode("utf-8", "surrogatepass")

    def form_body(self) -> bytes:
        rng = self.rng
        parts = [quote_from_bytes(self._bytes(k)) + "=" + quote_from_bytes(self._bytes(v))
                 for k, v in self.fields(json_ok=True).items()]
        if rng.random() < 0.3:  # raw, unquoted damage: invalid UTF-8 and broken escapes
            parts.insert(rng.randrange(len(parts) + 1),
                         rng.choice(["to=\xff\xfe", "subject=%ff%fe%fd", "%", "%zz=1", "&&&", "=", "a=%E4%B8",
                                     "message=\x80abc", "to=%00"]))
        body = "&".join(parts)
        return body.encode("latin-1", "replace") if rng.random() < 0.5 else body.encode("utf-8", "surrogatepass")

    def multipart_body(self) -> bytes:
        rng = self.rng
        body = b""
        for name, value in self.fields(json_ok=True).items():
            raw = self._bytes(value)
            if rng.random() < 0.1:
                raw += b"\xff\xfe\x80"
            body += (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=\"" + self._bytes(name)
                     + b"\"\r\n\r\n" + raw + b"\r\n")
        if rng.random() < 0.9:
            body += b"--" + BOUNDARY.encode() + b"--\r\n"
        return body

    def json_body(self) -> bytes:
        rng = self.rng
        kind = rng.random()
        if kind < 0.75:
            text = json.dumps(self.fields(json_ok=True), ensure_ascii=rng.random() < 0.6)
        elif kind < 0.85:
            text = json.dumps(self.json_value())  # not an object
        elif kind < 0.95:
            good = json.dumps(self.fields(json_ok=False))
            cut = rng.randrange(len(good))
            text = good[:cut] + rng.choice(["", "}", "\x00", "\\", '"', "\\u12", "\\ud800", "NaN", "Infinity"])
        else:
            depth = rng.choice([10, 100, 500, 5000])
            text = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"to":' * depth + "1" + "}" * depth
        body = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.05:
            body = body.replace(b"a", b"\xff", 1)
        return body

    def case(self) -> Case:
        rng = self.rng
        url = rng.choice(URLS)
        kind = rng.random()
        if kind < 0.35:
            body, ctype, note = self.form_body(), "application/x-www-form-urlencoded", "form"
        elif kind < 0.55:
            body, ctype, note = self.multipart_body(), f"multipart/form-data; boundary={BOUNDARY}", "multipart"
        elif kind < 0.9:
            body, ctype, note = self.json_body(), "application/json", "json"
        else:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 2000)))
            ctype, note = rng.choice(WRONG_TYPES + ("application/json", "application/x-www-form-urlencoded")), "bytes"
        if rng.random() < 0.1:
            ctype = rng.choice(WRONG_TYPES)
        extra: dict[str, str] = {}
        if rng.random() < 0.2:
            extra["HTTP_IDEMPOTENCY_KEY"] = rng.choice(
                ["k1", "k2", "", " ", "k" * 300, "a\r\nb", "\x00", "ключ", "é" * 10, "k1 "])
        if rng.random() < 0.1:
            extra["HTTP_X_FORWARDED_FOR"] = rng.choice(["1.2.3.4", "not-an-ip", "1.2.3.4, ::1", ",,,", "999.9.9.9"])
        if rng.random() < 0.05:
            extra["REMOTE_ADDR"] = rng.choice(["", "not-an-ip", "::ffff:1.2.3.4", "2001:db8::1", "999.1.1.1"])
        method = rng.choice(["GET", "PUT", "PATCH", "DELETE"]) if rng.random() < 0.02 else "POST"
        return Case(url, body, ctype, method, extra, note)


def crash_site(response) -> str:
    """' ExceptionType at file:line' for the innermost project frame of a crash, so the
    report groups 500s by cause."""
    exc_info = getattr(response, "exc_info", None)
    if not exc_info:
        return ""
    frames = [f for f in traceback.extract_tb(exc_info[2])
              if f.filename.startswith(str(REPO_ROOT)) and "site-packages" not in f.filename]
    where = f" at {Path(frames[-1].filename).relative_to(REPO_ROOT)}:{frames[-1].lineno}" if frames else ""
    return f" {exc_info[0].__name__}{where}"


def counts() -> tuple[int, int, int]:
    """(SendLog rows, queued tasks, idempotency keys), in one query: it runs twice per request."""
    tables = [m._meta.db_table for m in (SendLog, OrmQ, IdempotencyKey)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {connection.ops.quote_name(t)})"
                                             for t in tables))
        return tuple(cursor.fetchone())


def check(case: Case, client: Client) -> tuple[str | None, bool]:
    """Send one case; returns (problem or None, whether it created a message)."""
    before = counts()
    r = client.generic(case.method, case.url, case.body, content_type=case.content_type, **case.extra)
    after = counts()
    if r.status_code >= 500:
        return f"HTTP {r.status_code}{crash_site(r)}", False
    if not r.get("Content-Type", "").startswith("application/json"):
        return f"HTTP {r.status_code} with Content-Type {r.get('Content-Type')!r}", False
    try:
        body = json.loads(r.content)
    except ValueError:
        return f"HTTP {r.status_code} with a body that is not JSON", False
    if not isinstance(body, dict) or "code" not in body or "msg" not in body:
        return f"HTTP {r.status_code} without code/msg: {r.content[:100]!r}", False
    created = after[0] - before[0]
    if r.status_code >= 400 or r.status_code not in (200, 202):
        if after != before:
            return f"HTTP {r.status_code} ({body.get('error')}) but wrote rows: {before} -> {after}", False
        return None, False
    if created not in (0, 1) or (created == 1 and "id" not in body):
        return f"HTTP {r.status_code} wrote {created} SendLog rows: {body}", False
    if created == 0 and after != before:
        return f"HTTP {r.status_code} wrote other rows without a message: {before} -> {after}", False
    return None, created == 1


@pytest.fixture(autouse=True)
def _no_login_failure_limits(settings):
    # Thousands of fuzzed requests from one client IP, many with wrong credentials on
    # purpose: the failed-login limits (tested in test_login_limits.py) would answer most
    # of them 429 and leave the validation below unexercised.
    settings.HUB_LOGIN_FAILURES_PER_IP = 0
    settings.HUB_LOGIN_FAILURES_PER_APP = 0


@pytest.fixture
def creds(smtp_sink, make_server, make_app) -> dict:
    return make_app(make_server(smtp_sink)).creds


def test_fuzzed_requests_never_crash_and_refusals_write_nothing(creds, smtp_sink):
    client = Client(raise_request_exception=False)
    fuzzer = Fuzzer(SEED, creds)
    problems: dict[str, list[str]] = {}
    accepted = refused = 0
    for _ in range(REQUESTS):
        case = fuzzer.case()
        problem, created = check(case, client)
        if problem:
            problems.setdefault(problem.split(": ")[0], []).append(case.describe())
        accepted += created
        refused += not created

    report = "\n".join(f"{kind} x{len(cases)}, e.g. {cases[0]}" for kind, cases in problems.items())
    assert not problems, f"{sum(map(len, problems.values()))} of {REQUESTS} requests broke the rules:\n{report}"
    # The fuzzer must exercise both sides, or it proves nothing.
    assert accepted >= REQUESTS // 20, accepted
    assert refused >= REQUESTS // 2, refused


def test_accepted_fuzzed_messages_can_be_delivered(creds, smtp_sink):
    """What the API accepted from odd input (IDN domains, RTL marks, huge bodies, emoji...) is
    something a worker can build and send: every row ends `sent`, no exception escapes."""
    client = Client(raise_request_exception=False)
    fuzzer = Fuzzer(SEED + 1, creds)
    for _ in range(600):
        case = fuzzer.case()
        client.generic(case.method, case.url, case.body, content_type=case.content_type, **case.extra)
    ids = list(SendLog.objects.filter(status=SendLog.Status.QUEUED).values_list("id", flat=True))
    assert len(ids) >= 20, len(ids)

    crashed = []
    for log_id in ids:
        try:
            deliver_batch([log_id])
        except Exception as exc:  # noqa: BLE001 - every crash is collected and reported
            crashed.append(f"#{log_id}: {type(exc).__name__}: {exc}")
    assert not crashed, "\n".join(crashed[:10])
    not_sent = list(SendLog.objects.exclude(status=SendLog.Status.SENT).values_list("id", "status", "error"))
    assert not_sent == [], not_sent[:10]
    # Cases with sync=1 were delivered during their request already: count every sent row.
    assert len(smtp_sink.messages) == SendLog.objects.filter(status=SendLog.Status.SENT).count()


# --- crash classes, one by one ---------------------------------------------------------------

def _assert_clean_refusal(r, status: int, error: str) -> None:
    assert r.status_code == status, (r.status_code, r.content[:200])
    body = r.json()
    assert body["code"] == -1 and body["msg"] and body["error"] == error, body
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize("field", ["subject", "message", "to_name", "from_name", "text", "appsecret", "appid",
                                   "request_id"])
def test_lone_surrogate_in_json_is_refused_cleanly(creds, field):
    # JSON may spell a lone UTF-16 surrogate ("\ud800"); it parses to a str that cannot be
    # encoded as UTF-8, so the database (or the secret's HMAC) cannot take it.
    client = Client(raise_request_exception=False)
    fields = {"action": "send", **creds, "to": "alice@example.com", "subject": "s", "message": "m"}
    fields[field] = "x\ud800y"
    body = json.dumps(fields).encode()
    assert b"\\ud800" in body

    r = client.post("/api/v1/send", body, content_type="application/json")

    # Refused like any other bad value (400, or 401 for a credential), never a crash.
    assert 400 <= r.status_code < 500, (r.status_code, r.content[:200])
    assert r.json()["code"] == -1 and r.json()["msg"]
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize("depth", [5000, 100_000])
def test_deeply_nested_json_is_refused_cleanly(creds, depth):
    client = Client(raise_request_exception=False)
    r = client.post("/api/v1/send", b"[" * depth + b"]" * depth, content_type="application/json")
    _assert_clean_refusal(r, 400, "bad_request")


@pytest.mark.parametrize("to", ["alice@example.com\ufffd", "alice@exa\ufffdmple.com", "bob@\ufffd.example"])
def test_address_whose_domain_cannot_be_punycoded_is_refused(creds, smtp_sink, to):
    # Django's validate_email allows any character from U+00A1 to U+FFFF in a domain (IDN),
    # but the hub sends domains as punycode (hub.delivery.message.ascii_address), and "\ufffd" (what
    # invalid UTF-8 in a form decodes to) has none: accepting it makes a message no worker
    # can ever build. The API must refuse it as an invalid address.
    client = Client(raise_request_exception=False)
    fields = {"action": "send", **creds, "to": to, "subject": "s", "message": "m"}
    r = client.post("/api/v1/send", json.dumps(fields), content_type="application/json")
    _assert_clean_refusal(r, 400, "invalid_address")
    assert smtp_sink.messages == []


@pytest.mark.parametrize("value", ["abc", "1.5", "", "-1"])
def test_malformed_content_length_is_not_a_500(creds, value):
    # Django itself treats an unparsable CONTENT_LENGTH as 0 (WSGIRequest); the view reads
    # the raw header again with int().
    client = Client(raise_request_exception=False)
    r = client.post("/api.php", b"action=send", content_type="application/x-www-form-urlencoded",
                    CONTENT_LENGTH=value)
    assert r.status_code < 500, (r.status_code, r.content[:200])
    assert "code" in r.json() and "msg" in r.json()
    assert counts() == (0, 0, 0)
