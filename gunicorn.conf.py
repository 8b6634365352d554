"""gunicorn's settings. `gunicorn smtphub.wsgi` reads this file from the working directory
(bin/run, the systemd unit in docs/deploy.md and bench/ all start it from the repository);
options on the command line win over it. Like the hub's settings, the values come from the
environment or the .env file (HUB_BIND, WEB_WORKERS, WEB_WORKER_CLASS, WEB_THREADS,
WEB_WORKER_CONNECTIONS, TIME_ZONE, LOG_LEVEL).

gthread workers with many threads by default (issue 17, item 1). A sync worker reads a
request's headers with no time limit, so two clients sending one header line every few
seconds held both sync workers and every other request waited. gunicorn has no header read
timeout; its gthread worker keeps a connection that has sent nothing in its poller (not in a
thread), but a client that has started its request holds a thread until it finishes. So each
worker gets WEB_THREADS threads (64): slow clients take threads, not the web tier, until
there are more of them than threads; an idle thread costs a little memory, no CPU.
Measured with bench/send.lua (wrk, 20 keep-alive connections, 10 s, SQLite) on 2 shared
cores: on a quiet machine sync 2 workers 1014-1084 sends/s (p99 34-41 ms), gthread 2x64
829-992 (p99 111-148 ms: a keep-alive client stays with the worker that accepted it, so the
load is uneven); on a busy one sync 248-327, gthread 2x64 481, 2x8 291. Behind a buffering
proxy (nginx reads the whole request first) WEB_WORKER_CLASS=sync is fine again."""

import os
import time
from pathlib import Path

import environ

environ.Env.read_env(os.environ.get("HUB_ENV_FILE", str(Path(__file__).resolve().parent / ".env")),
                     overwrite=False)

bind = os.environ.get("HUB_BIND", "127.0.0.1:8000")
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
workers = int(os.environ.get("WEB_WORKERS", "2"))
# gunicorn turns a sync worker with threads > 1 into a gthread one: threads only for gthread.
threads = int(os.environ.get("WEB_THREADS", "64")) if worker_class == "gthread" else 1
# Connections one worker takes at once (busy threads + kept-alive + waiting for a first byte).
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "1000"))
timeout = 60
keepalive = 5
# gunicorn 27's control socket (one path per user, ~/.gunicorn/gunicorn.ctl) is not used by
# the hub, and two hubs (or test runs) on one machine would fight over it.
control_socket_disable = True

# --- logs: the format, language and time zone of the hub's own (smtphub/settings.py) ------
# The master process never loads Django, which is what sets TZ for the workers: without this
# the master logged in +0000 and the workers in the hub's zone.
os.environ["TZ"] = os.environ.get("TIME_ZONE", "Asia/Shanghai")  # settings.TIME_ZONE's default
time.tzset()
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # = settings.LOG_FORMAT
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S %z"  # = settings.LOG_DATEFMT
# The access log's line (after the format's time, level and logger name): client, request,
# status, bytes, user agent, duration.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s "%(a)s" %(M)sms'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": LOG_FORMAT, "datefmt": LOG_DATEFMT}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.stderr"}},
    "root": {"level": os.environ.get("LOG_LEVEL", "INFO"), "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
    },
}
