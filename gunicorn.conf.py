"""gunicorn's settings. `gunicorn smtphub.wsgi` reads this file from the working directory
(bin/run, the systemd unit in docs/deploy.md and bench/ all start it from the repository);
options on the command line win over it. Like the hub's settings, the values come from the
environment or the .env file (HUB_BIND, WEB_WORKERS, WEB_WORKER_CLASS, WEB_THREADS).

Sync workers by default: on the bench (docs/performance.md) they took 500-600 API sends/s
on 2 cores where gthread workers took 260-610, because a keep-alive client's connections
stay with the worker that accepted them and the load ends up uneven. With many clients
using `sync=1` (each holds a worker while SMTP answers), WEB_WORKER_CLASS=gthread with a
few WEB_THREADS keeps the other requests moving."""

import os
from pathlib import Path

import environ

environ.Env.read_env(os.environ.get("HUB_ENV_FILE", str(Path(__file__).resolve().parent / ".env")),
                     overwrite=False)

bind = os.environ.get("HUB_BIND", "127.0.0.1:8000")
worker_class = os.environ.get("WEB_WORKER_CLASS", "sync")
workers = int(os.environ.get("WEB_WORKERS", "2"))
# gunicorn turns a sync worker with threads > 1 into a gthread one: threads only for gthread.
threads = int(os.environ.get("WEB_THREADS", "4")) if worker_class == "gthread" else 1
timeout = 60
keepalive = 5
