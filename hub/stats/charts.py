"""Charts for the admin's campaign report, drawn on the server as SVG (no script, no CDN):
a stacked bar per hour (sent, failed) and horizontal bars as CSS widths. Every text is
escaped by format_html; sizes are computed here."""

from __future__ import annotations

from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .services import Counts

SENT, FAILED = "#16a34a", "#dc2626"
WIDTH, HEIGHT, PAD = 720, 220, 28


def _n(*values: float) -> list[str]:
    """Coordinates as text (format_html escapes its arguments into strings first)."""
    return [f"{v:.1f}" for v in values]


def hourly_bars(hours: list[tuple[datetime, Counts]], *, title: str) -> SafeString:
    """Stacked bars, one per hour with outcomes (hours without any are not drawn), scaled to
    the busiest hour; each bar has a <title> with its figures (the browser's tooltip)."""
    if not hours:
        return SafeString("")
    top = max(c.sent + c.failed for _h, c in hours) or 1
    step = (WIDTH - 2 * PAD) / len(hours)
    bar = max(2.0, step * 0.8)
    usable = HEIGHT - 2 * PAD
    shapes = []
    for i, (hour, c) in enumerate(hours):
        x = PAD + i * step
        h_sent, h_failed = usable * c.sent / top, usable * c.failed / top
        y_sent = HEIGHT - PAD - h_sent
        tip = f"{hour:%Y-%m-%d %H:00}  ✓ {c.sent:,}  ✗ {c.failed:,}"
        shapes.append(format_html(
            '<g><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
            '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/></g>',
            tip, *_n(x, y_sent, bar, h_sent), SENT, *_n(x, y_sent - h_failed, bar, h_failed), FAILED))
    labels = [(PAD + i * step, f"{hour:%m-%d %H}h") for i, (hour, _c) in enumerate(hours)
              if i % max(1, len(hours) // 8) == 0]
    return format_html(
        '<svg class="hub-chart" viewBox="0 0 {} {}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#9ca3af"/>{}{}'
        '<text x="{}" y="{}" font-size="11" fill="#6b7280">{}</text></svg>',
        WIDTH, HEIGHT, title, PAD, HEIGHT - PAD, WIDTH - PAD, HEIGHT - PAD,
        format_html_join("", "{}", ((s,) for s in shapes)),
        format_html_join("", '<text x="{}" y="{}" font-size="10" fill="#6b7280">{}</text>',
                         ((f"{x:.1f}", HEIGHT - 8, text) for x, text in labels)),
        PAD, 14, f"max {top:,}")


def share_bars(rows: list[tuple[str, int]], color: str = FAILED) -> SafeString:
    """Label, a bar as wide as the row's share of the largest, the figure."""
    top = max((n for _l, n in rows), default=0) or 1
    return format_html_join("", '<div class="hub-bar-row"><span class="hub-bar-label">{}</span>'
                                '<span class="hub-bar" style="width:{}%;background:{}"></span>'
                                '<span class="hub-num">{}</span></div>',
                            ((label, f"{100 * n / top:.1f}", color, f"{n:,}") for label, n in rows))
