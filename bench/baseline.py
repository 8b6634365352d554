"""Baseline: the limit for Python. Plain smtplib, P processes, each on ONE reused
connection, building every message itself. Two builds are measured:

  compat32      the legacy email.mime API (as Django builds mail): the cheap, correct way
  emailmessage  email.message.EmailMessage with the default policy (modern, ~3-5x slower)

Usage: python baseline.py --port 2525 --count 20000 --build compat32 --processes 2
Prints one JSON object: {"build", "sent", "processes", "seconds", "rate", "per_process"}.
Each message gets a unique X-Bench-Seq header so the sink can spot duplicates."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import smtplib
import sys
import time
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import message as M

DOMAIN = "bench.example.com"


def build_compat32(seq: int) -> str:
    msg = MIMEMultipart("alternative")
    msg["Subject"] = Header(M.SUBJECT, "utf-8")
    msg["From"] = formataddr((M.SENDER_NAME, M.SENDER), charset="utf-8")
    msg["To"] = formataddr((M.RECIPIENT_NAME, M.RECIPIENT), charset="utf-8")
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=DOMAIN)
    msg["X-Bench-Seq"] = str(seq)
    msg.attach(MIMEText(M.TEXT, "plain", "utf-8"))
    msg.attach(MIMEText(M.HTML, "html", "utf-8"))
    return msg.as_string()


def build_emailmessage(seq: int) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = M.SUBJECT
    msg["From"] = formataddr((M.SENDER_NAME, M.SENDER))
    msg["To"] = formataddr((M.RECIPIENT_NAME, M.RECIPIENT))
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=DOMAIN)
    msg["X-Bench-Seq"] = str(seq)
    msg.set_content(M.TEXT)
    msg.add_alternative(M.HTML, subtype="html")
    return msg.as_bytes()


BUILDS = {"compat32": build_compat32, "emailmessage": build_emailmessage}


def worker(host: str, port: int, build: str, first: int, count: int, barrier, out) -> None:
    make = BUILDS[build]
    conn = smtplib.SMTP(host, port, local_hostname=DOMAIN, timeout=30)
    conn.ehlo()
    barrier.wait(timeout=60)  # every process connected: start the clock together
    start = time.time()
    sent = 0
    for seq in range(first, first + count):
        refused = conn.sendmail(M.SENDER, [M.RECIPIENT], make(seq))
        if not refused:
            sent += 1
    end = time.time()
    conn.quit()
    out.put({"sent": sent, "start": start, "end": end})


def run(host: str, port: int, count: int, build: str, processes: int, seq_base: int = 0) -> dict:
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    share = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    procs, first = [], seq_base
    for n in share:
        p = ctx.Process(target=worker, args=(host, port, build, first, n, barrier, out))
        p.start()
        procs.append(p)
        first += n
    results = [out.get(timeout=900) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    start, end = min(r["start"] for r in results), max(r["end"] for r in results)
    sent = sum(r["sent"] for r in results)
    return {"build": build, "sent": sent, "processes": processes, "seconds": round(end - start, 3),
            "rate": round(sent / (end - start), 1), "start": start, "end": end}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--build", choices=sorted(BUILDS), default="compat32")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--seq-base", type=int, default=0)
    a = ap.parse_args()
    print(json.dumps(run(a.host, a.port, a.count, a.build, a.processes, a.seq_base)))


if __name__ == "__main__":
    main()
