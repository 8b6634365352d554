"""Personalization cost per recipient (issue 13): a realistic 20 KB HTML template with 10
placeholders, rendered for N distinct contacts in this process, the way the campaign
dispatcher will at delivery time (hub.mailtemplates.personalize.render; the template is
compiled once, then each recipient is a join). Also the MIME build of each rendered
message (hub.mailtemplates.mime.build_message, base64 and quoted-printable), which the
dispatcher pays as well.

    .venv/bin/python bench/render_templates.py [--recipients 20000]

No database, no network: the template is an unsaved model instance (the compiled-form cache
keys on its id and revision). Prints JSON: microseconds per recipient (median of 5 rounds)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smtphub.settings")

import django

django.setup()

from hub.mailtemplates.mime import build_message
from hub.mailtemplates.models import Template
from hub.mailtemplates.personalize import FIELDS, render


def make_html(target: int = 20 * 1024) -> str:
    """A newsletter: header, product blocks with images and links, footer; 10 placeholders."""
    head = ('<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{font-family:sans-serif}'
            '.p{padding:8px;border-bottom:1px solid #eee}</style></head><body>'
            '<p>尊敬的 {{fullname|朋友}}，您好！</p><p>您所在的地区：{{area|中国}}，会员号 {{var1}}。</p>')
    block = ('<div class="p"><img src="https://cdn.example.com/p/{n}.jpg" alt="商品 {n}" width="120">'
             '<h3>精选商品 {n}</h3><p>这是第 {n} 件本月推荐商品的介绍文字，品质保证，欢迎选购。'
             'Quality goods at fair prices, shipped within 24 hours.</p>'
             '<a href="https://shop.example.com/item/{n}?utm_source=edm">立即查看</a></div>')
    tail = ('<p>您的邮箱：{{email}}，电话：{{phone}}，生日：{{birthday}}，等级：{{var2|普通}}，积分：{{var3|0}}。</p>'
            '<p><a href="{{webview_url}}">在浏览器中查看</a> · <a href="{{unsubscribe_url}}">退订</a></p>'
            '</body></html>')
    blocks, n = [], 0
    while len((head + "".join(blocks) + tail).encode()) < target:
        n += 1
        blocks.append(block.format(n=n))
    return head + "".join(blocks) + tail


def contacts(count: int) -> list[dict[str, str]]:
    rows = []
    for i in range(count):
        row = {name: "" for name in FIELDS}
        row.update(email=f"user{i}@example.com", fullname=f"用户<{i}>" if i % 7 == 0 else f"张三{i}",
                   area="北京" if i % 2 else "", phone=f"1380000{i:04d}", birthday="1990-01-02", var1=str(100000 + i),
                   var2="黄金" if i % 3 else "", var3=str(i))
        rows.append(row)
    return rows


def per_recipient_us(func, rows: list, rounds: int = 5) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        for row in rows:
            func(row)
        timings.append((time.perf_counter() - start) / len(rows) * 1e6)
    return round(statistics.median(timings), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20000)
    args = parser.parse_args()
    html = make_html()
    template = Template(pk=1, name="bench", subjects=["{{fullname|朋友}}，十一月精选", "十一月精选 {{var1}}"], html=html)
    links = {"unsubscribe_url": "https://mail.example.com/unsubscribe/" + "x" * 60 + "/",
             "webview_url": "https://mail.example.com/view/" + "y" * 80 + "/"}
    rows = contacts(args.recipients)
    render(template, rows[0], links)  # compile once (cached), as the dispatcher's first recipient
    result = {
        "html_bytes": len(html.encode()),
        "placeholders_in_html": html.count("{{"),
        "recipients": args.recipients,
        "render_us_per_recipient": per_recipient_us(lambda row: render(template, row, links), rows),
    }
    few = rows[: max(1, args.recipients // 10)]
    for encoding in ("base64", "quoted-printable"):
        template.encoding = encoding
        result[f"render_and_mime_{encoding}_us_per_recipient"] = per_recipient_us(
            lambda row: build_message(template, render(template, row, links), sender="news@example.com",
                                      from_name="商店", to=row["email"], attachments=[]), few, rounds=3)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
