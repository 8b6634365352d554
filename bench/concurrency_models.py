"""Threads + smtplib against asyncio + aiosmtplib, the two ways issue 16 could keep many
messages in flight, measured alone (no database, no Django): C concurrent sessions send N
copies of the bench message (built per message with the compat32 API, as the hub's cost is
mostly that) to smtp-sink through bench/delayproxy.py at --rtt-ms (0 = straight to the sink).

    .venv/bin/python bench/concurrency_models.py --messages 2000 --sessions 16 --rtt-ms 30

Prints one JSON line per model: rate, CPU milliseconds of this process per message. Neither
client pipelines here (smtplib's and aiosmtplib's sendmail both wait for each reply), so the
two differ only in how the sessions wait: threads or an event loop. Measured 2026-11-30 (load
average 2-3, 2,000 messages, 16 sessions): at 30 ms, threads 123.4/s at 1.06 ms CPU per
message, asyncio 120.9/s at 1.21 ms; at 0 ms, threads 1,142/s at 0.85 ms, asyncio 1,230/s at
0.76 ms. Same rate, CPU within 15% either way: see hub/delivery/crew.py for the choice."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import smtplib
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import message as M
from baseline import build_compat32
from run import DelayProxy
from sink import Sink


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def threads_model(port: int, n: int, sessions: int) -> dict:
    todo = iter(range(n))
    lock = threading.Lock()

    def run() -> None:
        conn = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.example.com", timeout=30)
        conn.ehlo()
        while True:
            with lock:
                seq = next(todo, None)
            if seq is None:
                break
            conn.sendmail(M.SENDER, [M.RECIPIENT], build_compat32(seq))
        conn.quit()

    c0, t0 = cpu(), time.perf_counter()
    workers = [threading.Thread(target=run) for _ in range(sessions)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {"seconds": time.perf_counter() - t0, "cpu": cpu() - c0}


def asyncio_model(port: int, n: int, sessions: int) -> dict:
    import aiosmtplib

    async def main() -> None:
        todo = iter(range(n))

        async def run() -> None:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench.example.com",
                                     timeout=30, start_tls=False)
            await client.connect()
            while (seq := next(todo, None)) is not None:
                await client.sendmail(M.SENDER, [M.RECIPIENT], build_compat32(seq))
            await client.quit()

        await asyncio.gather(*(run() for _ in range(sessions)))

    c0, t0 = cpu(), time.perf_counter()
    asyncio.run(main())
    return {"seconds": time.perf_counter() - t0, "cpu": cpu() - c0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--rtt-ms", type=float, default=30.0)
    ap.add_argument("--jitter-ms", type=float, default=5.0)
    ap.add_argument("--workdir", default=str(Path(__file__).resolve().parent / ".work" / "concurrency-models"))
    a = ap.parse_args()
    for name, model in (("threads+smtplib", threads_model), ("asyncio+aiosmtplib", asyncio_model)):
        workdir = Path(a.workdir) / name.replace("+", "-")
        sink = Sink(workdir).start()
        proxy = DelayProxy(sink.port, a.rtt_ms, a.jitter_ms, workdir) if a.rtt_ms else None
        try:
            res = model(proxy.port if proxy else sink.port, a.messages, a.sessions)
            time.sleep(0.3)
            at_sink = sink.counted()
        finally:
            if proxy:
                proxy.stop()
            sink.stop()
        print(json.dumps({"model": name, "messages": a.messages, "sessions": a.sessions, "rtt_ms": a.rtt_ms,
                          "at_sink": at_sink, "rate": round(a.messages / res["seconds"], 1),
                          "cpu_ms_per_message": round(res["cpu"] / a.messages * 1000, 3)}), flush=True)


if __name__ == "__main__":
    main()
