"""The embedded web server survives slow clients (issue 17, item 1): a real gunicorn started
with the repository's gunicorn.conf.py defaults (what bin/run serves), 50 connections that
send a request line and then one header line every few seconds, held open for the whole
test, and 30 legitimate POST /api.php requests that must all be answered quickly.

With gunicorn's former default (2 sync workers) two such connections were enough to make
every other request wait until they gave up. Every loop here is bounded and every socket has
a timeout, so the test ends (and fails) instead of hanging when the server is starved."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import free_port, stop_process, subprocess_database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPO_ROOT = Path(__file__).resolve().parents[1]
SLOW_CLIENTS = 50
HEADER_INTERVAL = 2.0  # seconds between two header lines of a slow client
LEGIT_REQUESTS = 30
P99_LIMIT = 1.0  # seconds (issue 17: "legitimate requests still answered with p99 < 1 s")


def start_gunicorn(port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """gunicorn as bin/run starts it (gunicorn.conf.py read from the repository), on `port`."""
    child_env = {**os.environ, "HUB_ENV_FILE": "/dev/null", "DEBUG": "1", "DATABASE_URL": subprocess_database_url(),
                 "HUB_BIND": f"127.0.0.1:{port}", **(env or {})}
    child_env = {k: v for k, v in child_env.items() if not k.startswith("PYTEST")}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return subprocess.Popen([str(gunicorn), "smtphub.wsgi"], cwd=REPO_ROOT, env=child_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wait_until_answering(proc: subprocess.Popen, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gunicorn exited"
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api.php")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"gunicorn did not answer within {timeout} s")


class SlowClients:
    """`count` connections that each send a request line, then a header line every
    `interval` seconds (never finishing the header block) until stopped."""

    def __init__(self, port: int, count: int, interval: float):
        self.port, self.count, self.interval = port, count, interval
        self.sockets: list[socket.socket] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._dribble, daemon=True)
        self.open_at_end = 0

    def start(self) -> None:
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(b"POST /api.php HTTP/1.1\r\nHost: x\r\n")
            self.sockets.append(sock)
        self.thread.start()

    def _dribble(self) -> None:
        n = 0
        while not self.stop_event.wait(self.interval):
            n += 1
            for sock in self.sockets:
                try:
                    sock.sendall(b"X-Slow-%d: y\r\n" % n)
                except OSError:
                    pass  # the server hung up on it: counted in stop()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)
        for sock in self.sockets:
            # Still open from the server's side: a write succeeds and nothing (no EOF, no
            # answer) is waiting to be read.
            try:
                sock.sendall(b"X-Last: y\r\n")
                sock.setblocking(False)
                try:
                    sock.recv(1)  # an answer or EOF: the server gave up on this client
                except BlockingIOError:
                    self.open_at_end += 1
            except OSError:
                pass
            finally:
                sock.close()


def legitimate_post(port: int, body: bytes) -> tuple[float, int]:
    """One API send on a fresh connection; (seconds, HTTP status). Status 0 when it timed out."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/api.php", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = 0
    finally:
        conn.close()
    return time.monotonic() - started, status


@pytest.fixture
def web():
    port = free_port()
    proc = start_gunicorn(port)
    try:
        wait_until_answering(proc, port)
        yield port
    finally:
        stop_process(proc)


def test_fifty_slow_clients_do_not_starve_the_send_api(web, make_app, make_server):
    from hub.models import SendLog

    provisioned = make_app(make_server())
    body = urllib.parse.urlencode({"action": "send", **provisioned.creds, "to": "reader@example.com",
                                   "subject": "slow clients", "message": "<p>hello</p>"}).encode()
    slow = SlowClients(web, SLOW_CLIENTS, HEADER_INTERVAL)
    slow.start()
    try:
        time.sleep(HEADER_INTERVAL + 0.5)  # every slow client has sent more than its first line
        results = []
        for _ in range(LEGIT_REQUESTS):
            results.append(legitimate_post(web, body))
            if results[-1][1] == 0:
                break  # starved: one timeout says it, no need to wait for 29 more
    finally:
        slow.stop()

    statuses = [status for _, status in results]
    assert statuses == [200] * LEGIT_REQUESTS, statuses
    latencies = sorted(seconds for seconds, _ in results)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    assert p99 < P99_LIMIT, latencies
    # The slow clients really were held open the whole time (the test measured the attack,
    # not a server that had already dropped them).
    assert slow.open_at_end == SLOW_CLIENTS
    assert SendLog.objects.filter(app=provisioned.app).count() == LEGIT_REQUESTS
