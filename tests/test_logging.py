"""One log format, language and time zone for every process (issue 17, rough edges): Django's
LOGGING and gunicorn.conf.py agree, gunicorn's master logs in TIME_ZONE, and aiosmtpd's
per-command lines are DEBUG detail. (django-q2's English is checked on a real cluster's log in
tests/test_worker_lifecycle.py.)"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def gunicorn_conf(**env: str) -> dict:
    """gunicorn.conf.py's values, read in a child process with this environment (it sets TZ)."""
    code = ("import json, os, runpy, time; c = runpy.run_path('gunicorn.conf.py'); "
            "print(json.dumps({k: c[k] for k in ('LOG_FORMAT', 'LOG_DATEFMT', 'logconfig_dict', 'worker_class', "
            "'threads', 'workers', 'control_socket_disable')} | {'TZ': os.environ['TZ'], "
            "'zone': time.strftime('%z')}))")
    child_env = {**os.environ, "HUB_ENV_FILE": "/dev/null", **env}
    for name in ("TZ", "WEB_WORKER_CLASS", "WEB_THREADS", "WEB_WORKERS"):
        if name not in env:
            child_env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=child_env, capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(out.stdout)


def test_gunicorn_logs_in_the_hubs_format_and_time_zone(settings):
    conf = gunicorn_conf(TIME_ZONE="Asia/Shanghai")
    assert (conf["LOG_FORMAT"], conf["LOG_DATEFMT"]) == (settings.LOG_FORMAT, settings.LOG_DATEFMT)
    assert conf["logconfig_dict"]["formatters"]["plain"] == {"format": settings.LOG_FORMAT,
                                                             "datefmt": settings.LOG_DATEFMT}
    assert settings.LOGGING["formatters"]["plain"] == {"format": settings.LOG_FORMAT, "datefmt": settings.LOG_DATEFMT}
    # The master process never loads Django: the config file sets the zone itself.
    assert (conf["TZ"], conf["zone"]) == ("Asia/Shanghai", "+0800")
    assert gunicorn_conf(TIME_ZONE="UTC")["zone"] == "+0000"
    # gunicorn's access and error lines go through the root handler, formatted once.
    loggers = conf["logconfig_dict"]["loggers"]
    assert loggers["gunicorn.access"] == loggers["gunicorn.error"] == {"level": "INFO", "handlers": [],
                                                                       "propagate": True}
    logging.config.dictConfig({**conf["logconfig_dict"], "incremental": False})  # it is a valid config
    logging.config.dictConfig(settings.LOGGING)  # and Django's back


def test_gunicorn_defaults_give_slow_clients_threads_not_workers():
    conf = gunicorn_conf()
    assert (conf["worker_class"], conf["threads"], conf["workers"]) == ("gthread", 64, 2)
    assert conf["control_socket_disable"] is True
    # A sync worker takes no threads (gunicorn would turn it into gthread).
    assert gunicorn_conf(WEB_WORKER_CLASS="sync", WEB_THREADS="8")["threads"] == 1


def test_info_is_one_line_per_session_not_per_smtp_command(settings):
    assert settings.LOGGING["loggers"]["mail.log"] == {"level": "WARNING"}
    logging.config.dictConfig(settings.LOGGING)
    assert not logging.getLogger("mail.log").isEnabledFor(logging.INFO)
    assert logging.getLogger("mail.log").isEnabledFor(logging.WARNING)
    assert logging.getLogger("hub.smtpd").isEnabledFor(logging.INFO)


def test_debug_brings_the_per_command_lines_back():
    code = "from django.conf import settings; print(settings.LOGGING['loggers']['mail.log']['level'])"
    env = {**os.environ, "HUB_ENV_FILE": "/dev/null", "LOG_LEVEL": "DEBUG", "DJANGO_SETTINGS_MODULE": "smtphub.settings"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + code], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "DEBUG"
