"""CPU seconds and peak RSS of process groups, read from /proc (Linux only, no psutil).

A group is a root pid and all its descendants (gunicorn master + workers, qcluster + its
workers, ...). CPU = utime+stime+cutime+cstime summed over the live members, so workers that
were recycled and reaped still count (in their parent's cutime). The sampler takes a reading
every `interval` seconds; peak RSS is the largest sum over the group seen in one reading.
A group also gets a reading when it is added and when the sampler starts and stops, so a
group that is alive at one of those moments is measured however busy the machine is (the
thread's readings may come late: a short-lived wrk could end between two of them)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _read_stat(pid: int) -> tuple[int, float, int] | None:
    """(ppid, cpu seconds incl. reaped children, rss bytes) of one process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may hold spaces or parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    rss_pages = int(rest[21])
    return ppid, (utime + stime + cutime + cstime) / TICK, rss_pages * PAGE


def snapshot() -> dict[int, tuple[int, float, int]]:
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _read_stat(int(name))
            if st is not None:
                procs[int(name)] = st
    return procs


def descendants(root: int, procs: dict[int, tuple[int, float, int]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu, _rss) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


@dataclass
class GroupStats:
    cpu_start: float | None = None
    cpu_last: float = 0.0
    peak_rss: int = 0
    peak_procs: int = 0

    def as_dict(self) -> dict:
        return {"cpu_seconds": round(self.cpu_last - (self.cpu_start or 0.0), 2),
                "peak_rss_mb": round(self.peak_rss / 2**20, 1), "peak_processes": self.peak_procs}


@dataclass
class Sampler:
    """Sample named groups in a background thread, between start() and stop()."""

    groups: dict[str, list[int]]  # name -> root pids
    interval: float = 0.25
    stats: dict[str, GroupStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # add() reads in the caller's thread, beside _run()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.stats = {name: GroupStats() for name in self.groups}

    def add(self, name: str, pid: int) -> None:
        """Measure `pid` (and what it starts) as part of group `name` from now on. A reading
        is taken at once, while the process is known to be alive."""
        with self._lock:
            self.groups.setdefault(name, []).append(pid)
            self.stats.setdefault(name, GroupStats())
        self.sample()

    def sample(self) -> None:
        with self._lock:
            self._sample()

    def _sample(self) -> None:
        procs = snapshot()
        for name, roots in list(self.groups.items()):
            members = {p for root in roots for p in descendants(root, procs)}
            if not members:
                continue
            cpu = sum(procs[p][1] for p in members)
            rss = sum(procs[p][2] for p in members)
            st = self.stats[name]
            if st.cpu_start is None:
                st.cpu_start = cpu
            # A member that exits between readings takes its CPU with it unless its parent
            # reaped it (then it is in cutime); never let the total go backwards.
            st.cpu_last = max(st.cpu_last, cpu)
            st.peak_rss = max(st.peak_rss, rss)
            st.peak_procs = max(st.peak_procs, len(members))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> dict[str, dict]:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()
        return {name: st.as_dict() for name, st in self.stats.items()}
