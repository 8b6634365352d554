"""A TCP delay proxy on loopback: makes a local SMTP sink look like a server across the
internet. Every byte is held for half the round-trip time in each direction (with optional
jitter), so one request/reply exchange costs one RTT, as it does against a real provider.

    python bench/delayproxy.py --listen 127.0.0.1:2626 --target 127.0.0.1:2525 --rtt-ms 30 --jitter-ms 5

Order is kept: a chunk never overtakes the one before it, even with jitter (its due time is
at least its predecessor's). Bandwidth is not limited; only latency is added. Used by the
bench (bench/run.py's latency parts) in front of smtp-sink; bench only, never the hub.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import time
from collections import deque


class Pipe:
    """One direction of one connection: chunks read now are written `delay` later."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, one_way: float,
                 jitter: float) -> None:
        self.reader, self.writer = reader, writer
        self.one_way, self.jitter = one_way, jitter
        self.pending: deque[tuple[float, bytes]] = deque()
        self.arrived = asyncio.Event()
        self.last_due = 0.0

    def _due(self) -> float:
        delay = self.one_way + random.uniform(-self.jitter, self.jitter) if self.jitter else self.one_way
        due = max(time.monotonic() + max(delay, 0.0), self.last_due)
        self.last_due = due
        return due

    async def read(self) -> None:
        try:
            while chunk := await self.reader.read(65536):
                self.pending.append((self._due(), chunk))
                self.arrived.set()
        except (ConnectionError, OSError):
            pass  # the peer went away: deliver what was read, then close
        self.pending.append((self._due(), b""))  # end of stream, after the data before it
        self.arrived.set()

    async def write(self) -> None:
        try:
            while True:
                while not self.pending:
                    self.arrived.clear()
                    await self.arrived.wait()
                due, chunk = self.pending.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    return
                self.writer.write(chunk)
                await self.writer.drain()
        except (ConnectionError, OSError):
            return


async def relay(client_r, client_w, target: tuple[str, int], one_way: float, jitter: float) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        return
    up, down = Pipe(client_r, server_w, one_way, jitter), Pipe(server_r, client_w, one_way, jitter)
    tasks = [asyncio.create_task(t) for t in (up.read(), up.write(), down.read(), down.write())]
    try:
        await asyncio.gather(*tasks)
    finally:
        for writer in (client_w, server_w):
            with contextlib.suppress(Exception):
                writer.close()


def parse_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(listen: tuple[str, int], target: tuple[str, int], rtt_ms: float, jitter_ms: float,
                ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    one_way, jitter = rtt_ms / 2000.0, jitter_ms / 2000.0
    server = await asyncio.start_server(lambda r, w: relay(r, w, target, one_way, jitter), *listen,
                                        backlog=1024)
    if ready is not None:
        ready.set()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="host:port to listen on (loopback)")
    parser.add_argument("--target", required=True, help="host:port of the real server")
    parser.add_argument("--rtt-ms", type=float, default=30.0, help="round-trip time to add (default 30)")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="± jitter on the round trip (default 0)")
    args = parser.parse_args()
    listen, target = parse_hostport(args.listen), parse_hostport(args.target)
    if not listen[0].startswith("127.") and listen[0] not in ("localhost", "::1"):
        parser.error("listen on loopback only")
    asyncio.run(serve(listen, target, args.rtt_ms, args.jitter_ms))


if __name__ == "__main__":
    main()
