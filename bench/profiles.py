"""py-spy (from bench/.work/tools) attached to the hub's process groups while the bench runs.

`py-spy record --subprocesses --nonblocking --format raw` writes collapsed stacks
("frame;frame;frame count"); summarize() turns them into the top functions by self and by
inclusive samples, per group, so the report can name the costs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

RATE = 100  # samples per second per process


def start(py_spy: Path, workdir: Path, targets: dict[str, int]) -> list[subprocess.Popen]:
    if not py_spy.exists():
        raise SystemExit(f"{py_spy} is missing: run `bash bench/setup.sh` first")
    out = workdir / "profile"
    out.mkdir(exist_ok=True)
    procs = []
    for name, pid in targets.items():
        cmd = [str(py_spy), "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", str(RATE),
               "--format", "raw", "--output", str(out / f"{name}.txt")]
        if os.environ.get("BENCH_PROFILE_IDLE"):
            cmd.append("--idle")  # wall-clock view: waiting threads are sampled too
        procs.append(subprocess.Popen(cmd, stdout=open(out / f"{name}.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115 - the child process writes to it
                                      start_new_session=True))
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    procs.clear()


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """'deliver_batch (hub/delivery/outbox.py:240)' -> 'deliver_batch (hub/delivery/outbox.py)'; trims
    site-packages and stdlib prefixes so the names stay readable."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/", "/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def summarize(workdir: Path, top: int = 25) -> dict:
    summary = {}
    for path in sorted((workdir / "profile").glob("*.txt")):
        self_c: Counter = Counter()
        incl: Counter = Counter()
        total = 0
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            # The first frames are "process PID:..." and the thread; keep the Python frames.
            frames = [_short(f) for f in stack.split(";") if "(" in f and not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            total += n
            self_c[frames[-1]] += n
            for f in set(frames):
                incl[f] += n
        summary[path.stem] = {
            "samples": total,
            "top_self": [[f, c, round(100 * c / total, 1)] for f, c in self_c.most_common(top)] if total else [],
            "top_inclusive": [[f, c, round(100 * c / total, 1)] for f, c in incl.most_common(top * 2)] if total else [],
        }
    return summary
