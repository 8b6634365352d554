"""One POST to a webhook endpoint, with the network rules enforced where they matter.

Plain http.client, because we need control the usual clients hide: the connection goes to
an address we checked (targets.address_allowed) after resolving the name ourselves, so a
name that resolves to an internal address is refused at every attempt (DNS rebinding);
redirects are never followed (a 3xx is an answer like any other, and a failure); the whole
exchange has one deadline (a server that drips its answer byte by byte cannot hold a worker);
and at most RESPONSE_READ bytes of the answer are read (the log keeps RESPONSE_KEEP
characters). This module does no database work: the drain runs it in threads."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from .targets import address_allowed

RESPONSE_READ = 8192
RESPONSE_KEEP = 1000
USER_AGENT = "SMTP-Hub-Webhooks/1"


class Refused(OSError):
    """The name resolves only to addresses the hub may not connect to."""


@dataclass
class Result:
    status_code: int | None
    response: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    refused, last_error = [], None
    for family, socktype, proto, _name, sockaddr in infos:
        if not address_allowed(sockaddr[0]):
            refused.append(sockaddr[0])
            continue
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    if last_error is not None:
        raise last_error
    raise Refused(f"refused: {host} resolves to a private or local address ({', '.join(refused[:3])})")


class _Http(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = _connect(self.host, self.port, self.timeout)


class _Https(http.client.HTTPSConnection):
    def connect(self) -> None:
        sock = _connect(self.host, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Result:
    """POST `body` to `url`; never raises for what the network or the server does."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    conn = (_Https(parts.hostname, port, timeout=timeout, context=ssl.create_default_context()) if https
            else _Http(parts.hostname, port, timeout=timeout))
    status, text, error = None, "", ""
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
        response = conn.getresponse()
        status = response.status
        chunks, size = [], 0
        while size < RESPONSE_READ:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if conn.sock is not None:
                conn.sock.settimeout(remaining)
            chunk = response.read1(RESPONSE_READ - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        text = b"".join(chunks).decode("utf-8", errors="replace")[:RESPONSE_KEEP]
        if 300 <= status < 400:
            error = f"redirect not followed (Location: {response.getheader('Location', '')[:300]})"
        elif not 200 <= status < 300:
            error = f"HTTP {status}"
    except Refused as exc:
        error = str(exc)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # Timeouts, refused connections, TLS errors, malformed answers: all a failed attempt.
        error = f"{type(exc).__name__}: {exc}"[:RESPONSE_KEEP] if str(exc) else type(exc).__name__
    finally:
        conn.close()
    return Result(status, text, error, int((time.monotonic() - t0) * 1000))
