"""Batch send API client for the bench: POSTs N messages to /api/v1/send/batch in requests of
up to --batch messages (default 500), from --threads threads over keep-alive connections.

    python bench/batch_client.py --port 8000 --appid 1 --appsecret S --count 20000

Prints one JSON line: accepted, refused, requests, seconds, accepted_per_s, latency per
request (p50/p99 ms). Every message is the bench's message (bench/message.py); the batch
body is built once and sent again, so the client's own CPU stays small."""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import message as M


def body(appid: str, secret: str, n: int) -> bytes:
    one = {"to": M.RECIPIENT, "to_name": M.RECIPIENT_NAME, "subject": M.SUBJECT, "message": M.HTML,
           "from_name": M.SENDER_NAME}
    return json.dumps({"appid": appid, "appsecret": secret, "messages": [one] * n},
                      ensure_ascii=False).encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--appid", required=True)
    ap.add_argument("--appsecret", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    sizes = [a.batch] * (a.count // a.batch) + ([a.count % a.batch] if a.count % a.batch else [])
    bodies = {n: body(a.appid, a.appsecret, n) for n in set(sizes)}
    lock = threading.Lock()
    todo = list(sizes)
    stats = {"accepted": 0, "refused": 0, "requests": 0, "errors": [], "latency": []}

    def run() -> None:
        conn = http.client.HTTPConnection(a.host, a.port, timeout=120)
        while True:
            with lock:
                if not todo:
                    break
                n = todo.pop()
            t = time.perf_counter()
            conn.request("POST", "/api/v1/send/batch", body=bodies[n], headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            ms = (time.perf_counter() - t) * 1000
            try:
                doc = json.loads(data)
                ok = sum(1 for item in doc.get("results", []) if item.get("id"))
            except ValueError:
                doc, ok = {}, 0
            with lock:
                stats["requests"] += 1
                stats["latency"].append(ms)
                stats["accepted"] += ok
                stats["refused"] += n - ok
                if resp.status != 200 and len(stats["errors"]) < 5:
                    stats["errors"].append(data[:300].decode(errors="replace"))
        conn.close()

    threads = [threading.Thread(target=run) for _ in range(a.threads)]
    t0 = time.time()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seconds = time.time() - t0
    lat = sorted(stats["latency"]) or [0.0]
    print(json.dumps({
        "accepted": stats["accepted"], "refused": stats["refused"], "requests": stats["requests"],
        "batch": a.batch, "threads": a.threads, "start": t0, "seconds": round(seconds, 3),
        "accepted_per_s": round(stats["accepted"] / seconds, 1) if seconds else None,
        "latency_ms": {"p50": round(lat[len(lat) // 2], 1), "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1)},
        "errors": stats["errors"],
    }))


if __name__ == "__main__":
    main()
