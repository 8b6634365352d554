"""Queue one bench message per recipient of a file (one address a line, the first N) in
post_office with `mail.send_many` (its bulk path), 1000 at a time: the campaign's recipients,
for bench/campaign.py's comparison. Each gets a unique X-Bench-Seq header (duplicates).
Usage: BENCH_PO_DB=... po-venv/bin/python queue_recipients.py FILE N"""
import os
import sys
from email.utils import formataddr
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django

django.setup()

import message as M
from post_office import mail


def main(path: str, total: int) -> None:
    sender = formataddr((M.SENDER_NAME, M.SENDER))
    batch, seq = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if seq >= total:
                break
            batch.append({"sender": sender, "recipients": [line.strip()], "subject": M.SUBJECT, "message": M.TEXT,
                          "html_message": M.HTML, "headers": {"X-Bench-Seq": str(seq)}})
            seq += 1
            if len(batch) == 1000:
                mail.send_many(batch)
                batch = []
    if batch:
        mail.send_many(batch)
    print(seq)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
