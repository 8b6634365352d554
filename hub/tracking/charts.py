"""The numbers behind the admin's "opens and clicks" page, shaped for server-drawn SVG/CSS
charts (no script, no CDN): hourly series of human and machine hits, and top-N shares."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 720, 160
MAX_HOURS = 96


@dataclass
class Bar:
    label: str
    value: int
    percent: float


@dataclass
class Column:
    label: str
    human: int
    machine: int
    x: float
    width: float
    human_y: float
    human_h: float
    machine_y: float
    machine_h: float


def top(mapping: dict | None, n: int = 10) -> list[Bar]:
    items = sorted((mapping or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(v for _k, v in items) or 1
    shown = [Bar(k, v, round(100.0 * v / total, 1)) for k, v in items[:n]]
    rest = sum(v for _k, v in items[n:])
    if rest:
        shown.append(Bar("…", rest, round(100.0 * rest / total, 1)))
    return shown


def hourly(human: dict | None, machine: dict | None) -> list[Column]:
    """Stacked columns per hour (people below, machines above), the last MAX_HOURS hours
    that had hits."""
    hours = sorted(set(human or {}) | set(machine or {}))[-MAX_HOURS:]
    if not hours:
        return []
    peak = max((human or {}).get(h, 0) + (machine or {}).get(h, 0) for h in hours) or 1
    width = WIDTH / len(hours)
    columns = []
    for i, hour in enumerate(hours):
        h, m = (human or {}).get(hour, 0), (machine or {}).get(hour, 0)
        human_h, machine_h = HEIGHT * h / peak, HEIGHT * m / peak
        columns.append(Column(hour, h, m, round(i * width, 2), round(max(width - 1, 1), 2),
                              round(HEIGHT - human_h, 2), round(human_h, 2),
                              round(HEIGHT - human_h - machine_h, 2), round(machine_h, 2)))
    return columns
