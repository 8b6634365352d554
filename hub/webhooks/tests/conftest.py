"""Fixtures of the webhook tests: a real HTTP receiver on loopback that checks every
request's signature and timestamp the way docs/webhooks.md tells receivers to (written here
with hmac directly, not with hub.webhooks.signing, so a wrong signer cannot pass its own
check), and the settings that let webhooks reach loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port
from hub.tests.test_admin_support import staff_factory  # noqa: F401  (admin client fixture)
from hub.webhooks import subscriptions
from hub.webhooks.models import Endpoint

SECRET = "whsec_test_0123456789abcdef"
WINDOW = 300


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def events(self) -> list[dict]:
        return json.loads(self.body)["events"]


@dataclass
class Receiver:
    """Answers each POST with the next of `statuses` (200 when none are left)."""

    port: int
    secret: str = SECRET
    statuses: list[int] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    hold: threading.Event | None = None  # set: the answer waits until it is released
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks?source=hub"

    @property
    def accepted(self) -> list[Request]:
        return [r for r in self.requests if r.signature_ok]

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        timestamp = headers.get("X-Hub-Timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > WINDOW:
            return False
        mac = hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(f"v1={mac}", headers.get("X-Hub-Signature", ""))


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items()}
            ok = receiver.verify(headers, body) and self.path == "/hooks?source=hub"
            with receiver.lock:
                receiver.requests.append(Request(headers, body, ok))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            if receiver.hold is not None:
                receiver.hold.wait(10)
            if not ok:
                status = 401
            payload = b"bad signature" if not ok else (b"ok" if status < 300 else b"receiver error " * 200)
            try:
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the hub gave up waiting (the timeout test): nobody to answer

        def log_message(self, *args) -> None:  # quiet
            pass

    return Handler


@pytest.fixture
def receiver():
    for _ in range(20):
        port = free_port()
        holder = Receiver(port)
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), _handler(holder))
        except OSError:
            continue
        break
    else:
        raise RuntimeError("no free port for the test receiver")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield holder
    if holder.hold is not None:
        holder.hold.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    """Loopback allowed (the receiver), and no process snapshot carried between tests (each
    test's database is rolled back under it)."""
    settings.HUB_WEBHOOK_ALLOW_NETWORKS = ["127.0.0.0/8"]
    settings.HUB_WEBHOOK_TIMEOUT_SECONDS = 5.0
    subscriptions.invalidate()
    yield
    subscriptions.invalidate()


@pytest.fixture
def make_endpoint(db):
    def make(account, url: str, kinds: str = "sent,failed,bounced,complained,opened,clicked,unsubscribed",
             **fields) -> Endpoint:
        secret = fields.pop("secret", SECRET)
        endpoint = Endpoint(account=account, url=url, kinds=kinds, **fields)
        endpoint.set_secret(secret)
        endpoint.save()
        return endpoint

    return make
