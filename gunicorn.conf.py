"""gunicorn's settings. `gunicorn smtphub.wsgi` reads this file from the working directory
(bin/run, the systemd unit in docs/deploy.md and bench/ all start it from the repository);
options on the command line win over it. Like the hub's settings, the values come from the
environment or the .env file (HUB_BIND, WEB_WORKERS, WEB_THREADS).

gthread workers: a client's keep-alive connection is reused instead of reconnecting for
every request (the sync worker closes each one), and a request that waits on SMTP
(`sync=1`, an admin's test email) holds one thread, not a whole process."""

import os
from pathlib import Path

import environ

environ.Env.read_env(os.environ.get("HUB_ENV_FILE", str(Path(__file__).resolve().parent / ".env")),
                     overwrite=False)

bind = os.environ.get("HUB_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 60
keepalive = 5
