"""Queue N copies of the bench message in post_office (`mail.send_many`, its bulk path).
Each gets a unique X-Bench-Seq header so the sink can count duplicates.
Usage: BENCH_PO_DB=... po-venv/bin/python queue_mail.py N"""
import os
import sys
from email.utils import formataddr
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()

import message as M  # noqa: E402
from post_office import mail  # noqa: E402


def main(total: int) -> None:
    sender = formataddr((M.SENDER_NAME, M.SENDER))
    rcpt = formataddr((M.RECIPIENT_NAME, M.RECIPIENT))
    for start in range(0, total, 1000):
        mail.send_many([
            {"sender": sender, "recipients": [rcpt], "subject": M.SUBJECT, "message": M.TEXT,
             "html_message": M.HTML, "headers": {"X-Bench-Seq": str(i)}}
            for i in range(start, min(total, start + 1000))
        ])
    print(total)


if __name__ == "__main__":
    main(int(sys.argv[1]))
