"""SMTP Hub settings. Everything comes from the environment (or a `.env` file beside
manage.py); every value has a default that works for a local, single-machine install.
See `.env.example` for the list and `docs/deploy.md` for production."""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file is optional (HUB_ENV_FILE names another); real environment variables win over it.
environ.Env.read_env(env.str("HUB_ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)

# Used only when nothing else is configured; hub.checks refuses it when DEBUG is off.
DEV_SECRET_KEY = "dev-insecure-smtphub-key-change-me"

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin theme must come before django.contrib.admin to override its templates.
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # hub before django_q: its `qcluster` command replaces django-q2's (signals, recovery).
    "hub",
    "django_q",
    "hub.contacts",
    "hub.mailtemplates",
    "hub.campaigns",
    "hub.domains",
    "hub.webhooks",
    "hub.stats",
    "hub.tracking",
    "hub.inbound",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "smtphub.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "smtphub.wsgi.application"

# --- Database -----------------------------------------------------------------------
VAR_DIR = Path(env.str("HUB_VAR_DIR", default=str(BASE_DIR / "var")))
# The data directory holds the database, its WAL and the queue: readable by the hub's user
# only (0700), whatever the umask; made so at every start, in case it was created otherwise.
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
if VAR_DIR.stat().st_uid == os.getuid() and VAR_DIR.stat().st_mode & 0o077:
    VAR_DIR.chmod(0o700)

DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'smtphub.sqlite3'}"
DATABASES = {"default": environ.Env.db_url_config(DATABASE_URL)}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["ENGINE"] = "smtphub.sqlite3"  # Django's, with a write gate between processes (its docstring)
    # The web server and the qcluster write to the same file. WAL lets readers run
    # beside a writer; IMMEDIATE transactions take the write lock up front, so two
    # writers queue on the busy timeout instead of failing with "database is locked".
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=20),
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # SQLite creates the -wal and -shm files with the database file's mode: create it (empty
    # is a valid database) and keep it 0600, so none of them is ever readable by others.
    _sqlite_file = Path(_db["NAME"])
    if _db["NAME"] not in ("", ":memory:") and _sqlite_file.parent.is_dir():
        os.close(os.open(_sqlite_file, os.O_CREAT | os.O_WRONLY, 0o600))
        for _path in _sqlite_file.parent.glob(_sqlite_file.name + "*"):
            if _path.stat().st_uid == os.getuid() and _path.stat().st_mode & 0o077:
                _path.chmod(0o600)
    # Tests run a real qcluster process against the test database, so it must be a file.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test-smtphub.sqlite3")}
elif _db["ENGINE"] in ("django.db.backends.mysql",):
    _db.setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
            "isolation_level": "read committed",
        }
    )
    _db["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
# Workers live for days: reuse connections for a bounded time and check them before use,
# so a database restart or wait_timeout never leaves a worker with a dead connection.
_db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
_db["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation -----------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
# Date and time formats of our own (to the second, the same in both languages).
FORMAT_MODULE_PATH = ["smtphub.formats"]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Static files (served by WhiteNoise, so the hub runs without a separate web server)
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security -----------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("HUB_BEHIND_HTTPS_PROXY", default=False) else None
)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- REST framework: the API authenticates apps itself (AppID/AppSecret in the body) --
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.JSONParser",
    ],
    "UNAUTHENTICATED_USER": None,
    # Only used by the native API's OpenAPI schema (/api/v1/schema/).
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- Task queue (django-q2) -----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_TIMEOUT = env.int("Q_TIMEOUT", default=120)
Q_CLUSTER = {
    "name": "smtphub",
    "workers": env.int("Q_WORKERS", default=2),
    # A task that runs longer than `timeout` is killed; the broker hands a task out again
    # only after `retry`, which must be longer, or a slow task would run twice at once.
    "timeout": Q_TIMEOUT,
    "retry": Q_TIMEOUT + 60,
    # Never let the broker re-run a failed or crashed task: the delivery task records
    # its own outcome and retries are scheduled by the hub (an exception is acknowledged,
    # the SendLog row keeps the reason).
    "ack_failures": True,
    "max_attempts": 1,
    # A schedule missed while the cluster was down runs once, not once per missed slot.
    "catch_up": False,
    # -1: don't store successful tasks (SendLog and DeliveryAttempt are the record; storing
    # them made django-q2 prune the task table on every task, 40% of a worker's time).
    # Failed tasks are still stored.
    "save_limit": env.int("Q_SAVE_LIMIT", default=-1),
    "poll": 0.1,
    "label": "Task queue",
    # A worker is replaced after this many tasks (django-q2's default: 500). A speed-limited
    # campaign's rows trickle in, so its drains are short and many (~1.6 tasks/s at 20/s)
    # and the 500 came round about every ten minutes, while the pacer held the other worker:
    # see docs/campaigns.md ("Not done / known limits") for what each replacement cost.
    "recycle": env.int("Q_RECYCLE", default=10_000),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- The hub ----------------------------------------------------------------------------
# Fernet keys (newest first) that encrypt SMTP passwords; rotate by prepending a new key
# and running `manage.py hub_rotate_keys`. HMAC key for app secrets.
HUB_ENCRYPTION_KEYS = env.list("HUB_ENCRYPTION_KEYS", default=[])
HUB_SECRET_HASH_KEY = env.str("HUB_SECRET_HASH_KEY", default="")
# The domain used in Message-IDs and in our EHLO greeting.
HUB_DOMAIN = env.str("HUB_DOMAIN", default="smtphub.localdomain")
HUB_MAX_RECIPIENTS = env.int("HUB_MAX_RECIPIENTS", default=50)
HUB_MAX_SUBJECT_CHARS = env.int("HUB_MAX_SUBJECT_CHARS", default=998)
HUB_MAX_NAME_CHARS = env.int("HUB_MAX_NAME_CHARS", default=200)
HUB_MAX_BODY_BYTES = env.int("HUB_MAX_BODY_BYTES", default=2 * 1024 * 1024)
HUB_MAX_ATTACHMENTS = env.int("HUB_MAX_ATTACHMENTS", default=10)
HUB_MAX_ATTACHMENT_BYTES = env.int("HUB_MAX_ATTACHMENT_BYTES", default=10 * 1024 * 1024)
HUB_MAX_ATTACHMENTS_TOTAL_BYTES = env.int("HUB_MAX_ATTACHMENTS_TOTAL_BYTES", default=20 * 1024 * 1024)
# The whole HTTP request; base64 in JSON makes attachments a third larger.
HUB_MAX_REQUEST_BYTES = env.int(
    "HUB_MAX_REQUEST_BYTES", default=HUB_MAX_BODY_BYTES * 2 + HUB_MAX_ATTACHMENTS_TOTAL_BYTES * 4 // 3 + 64 * 1024
)
HUB_SYNC_TIMEOUT = env.int("HUB_SYNC_TIMEOUT", default=30)
# POST /api/v1/send/batch: messages per request at most (hub.batch).
HUB_BATCH_MAX_MESSAGES = env.int("HUB_BATCH_MAX_MESSAGES", default=500)

# Delivery reliability. A transient failure (connection, timeout, TLS, 4xx) is retried after
# these delays in seconds (each with +-20% jitter); after the last one, or once a message is
# older than HUB_RETRY_MAX_AGE seconds, it fails for good.
HUB_RETRY_SCHEDULE = [int(s) for s in env.list("HUB_RETRY_SCHEDULE", default=["60", "300", "900", "3600", "14400"])]
HUB_RETRY_MAX_AGE = env.int("HUB_RETRY_MAX_AGE", default=86400)
# A server whose last attempt failed this recently is tried after the healthy ones.
HUB_SERVER_COOLDOWN_SECONDS = env.int("HUB_SERVER_COOLDOWN_SECONDS", default=60)
# A worker reuses an SMTP connection for at most this long / this many messages.
HUB_SMTP_REUSE_SECONDS = env.int("HUB_SMTP_REUSE_SECONDS", default=60)
HUB_SMTP_REUSE_MAX = env.int("HUB_SMTP_REUSE_MAX", default=100)
# A reused connection idle this long is checked with NOOP first.
HUB_SMTP_NOOP_AFTER_IDLE_SECONDS = env.int("HUB_SMTP_NOOP_AFTER_IDLE_SECONDS", default=5)
# A drain task claims this many waiting messages at a time, and stops (handing over to a
# fresh task) after this many seconds, well inside Q_TIMEOUT.
HUB_DELIVERY_BATCH = env.int("HUB_DELIVERY_BATCH", default=50)
# Concurrent SMTP sessions per delivery worker process (hub.delivery.crew); each server's
# max_connections still bounds what all workers together open to it.
HUB_DELIVERY_THREADS = env.int("HUB_DELIVERY_THREADS", default=16)
# RFC 2920: MAIL, RCPTs and DATA in one round trip where the server offers PIPELINING.
HUB_SMTP_PIPELINING = env.bool("HUB_SMTP_PIPELINING", default=True)
# ... and the next message's envelope behind the current one's content (hub.delivery.chain):
# one round trip per message on a session instead of two.
HUB_SMTP_PIPELINE_NEXT = env.bool("HUB_SMTP_PIPELINE_NEXT", default=True)
# Connection slots (hub.delivery.slots): a slot's lease, renewed while its connection is open,
# frees it after a killed worker; a thread waits this long for a free connection of its
# server before the message goes back to the queue; idle connections close after this long.
# Keep the idle close well under the wait: a worker whose drain ended holds its idle
# connections' slots until they close, and another worker waiting for one must get it in time.
HUB_SMTP_SLOT_LEASE_SECONDS = env.int("HUB_SMTP_SLOT_LEASE_SECONDS", default=30)
HUB_SMTP_SLOT_WAIT_SECONDS = env.float("HUB_SMTP_SLOT_WAIT_SECONDS", default=10.0)
HUB_SMTP_IDLE_CLOSE_SECONDS = env.int("HUB_SMTP_IDLE_CLOSE_SECONDS", default=5)
HUB_BATCH_TIME_BUDGET_SECONDS = env.int("HUB_BATCH_TIME_BUDGET_SECONDS", default=max(10, Q_TIMEOUT // 3))
# After a batch that was not full, a drain waits this long before claiming again, so that
# messages arriving one by one are claimed several at a time (at most this much latency).
HUB_DRAIN_GATHER_MS = env.int("HUB_DRAIN_GATHER_MS", default=50)
# A requested drain that has not started after this long may have been lost: the next
# message asks for another (see hub.tasks.wake_workers).
HUB_WAKEUP_STALE_SECONDS = env.int("HUB_WAKEUP_STALE_SECONDS", default=10)
# The sweeper (every minute) wakes the workers for rows waiting this long in `queued`
# (their wake-up was lost, e.g. the process died right after the commit).
HUB_STUCK_QUEUED_SECONDS = env.int("HUB_STUCK_QUEUED_SECONDS", default=60)
HUB_STUCK_SENDING_SECONDS = env.int("HUB_STUCK_SENDING_SECONDS", default=Q_TIMEOUT + 60)
# The delivery worker (manage.py qcluster, hub.delivery.lease): its main process beats this
# often; a worker cluster on another machine that has not beaten for HUB_WORKER_LEASE_SECONDS
# is dead and the rows it held are due again (on this machine a dead process is seen at once).
# Keep the lease well above the heartbeat: a live cluster taken for dead may send a message
# twice. On SIGTERM to its main process alone the cluster lets running tasks finish for
# HUB_WORKER_STOP_GRACE_SECONDS, then stops its processes (rows handed back, due at once).
HUB_WORKER_HEARTBEAT_SECONDS = env.int("HUB_WORKER_HEARTBEAT_SECONDS", default=5)
HUB_WORKER_LEASE_SECONDS = env.int("HUB_WORKER_LEASE_SECONDS", default=60)
HUB_WORKER_STOP_GRACE_SECONDS = env.int("HUB_WORKER_STOP_GRACE_SECONDS", default=4)
# Length of the "per minute" throttle window. Only tests should change it.
HUB_THROTTLE_MINUTE_SECONDS = env.int("HUB_THROTTLE_MINUTE_SECONDS", default=60)

# SMTP submission server (manage.py smtpd; bin/run starts it unless HUB_SMTPD=0).
HUB_SMTPD_HOST = env.str("HUB_SMTPD_HOST", default="127.0.0.1")
HUB_SMTPD_PORT = env.int("HUB_SMTPD_PORT", default=2525)
HUB_SMTPD_TLS_PORT = env.int("HUB_SMTPD_TLS_PORT", default=0)
HUB_SMTPD_TLS_CERT = env.str("HUB_SMTPD_TLS_CERT", default="")
HUB_SMTPD_TLS_KEY = env.str("HUB_SMTPD_TLS_KEY", default="")
# AUTH over a connection without TLS: refused unless this is on AND smtpd listens on loopback.
HUB_SMTPD_ALLOW_PLAINTEXT_AUTH = env.bool("HUB_SMTPD_ALLOW_PLAINTEXT_AUTH", default=False)
HUB_SMTPD_MAX_MESSAGE_BYTES = env.int("HUB_SMTPD_MAX_MESSAGE_BYTES", default=25 * 1024 * 1024)
HUB_SMTPD_TIMEOUT = env.int("HUB_SMTPD_TIMEOUT", default=120)
HUB_SMTPD_SHUTDOWN_GRACE = env.int("HUB_SMTPD_SHUTDOWN_GRACE", default=30)
# Failed logins (API and SMTP AUTH; hub.access.login, docs/security.md). Only failures count,
# in fixed windows of HUB_LOGIN_FAILURE_WINDOW seconds. An IP (IPv6: its /64) over its limit
# is refused before its credentials are checked; an AppID over its limit gets 429 / 421 for
# wrong secrets only: its correct secret is still checked and accepted. 0 disables a limit.
HUB_LOGIN_FAILURE_WINDOW = env.int("HUB_LOGIN_FAILURE_WINDOW", default=300)
HUB_LOGIN_FAILURES_PER_IP = env.int("HUB_LOGIN_FAILURES_PER_IP", default=30)
HUB_LOGIN_FAILURES_PER_APP = env.int("HUB_LOGIN_FAILURES_PER_APP", default=100)
# One SMTP session: after this many failed AUTH commands, wait HUB_SMTPD_AUTH_FAILURE_DELAY
# seconds, answer 421 and disconnect.
HUB_SMTPD_AUTH_FAILURES_PER_SESSION = env.int("HUB_SMTPD_AUTH_FAILURES_PER_SESSION", default=3)
HUB_SMTPD_AUTH_FAILURE_DELAY = env.float("HUB_SMTPD_AUTH_FAILURE_DELAY", default=2.0)

# Contacts (hub.contacts): file imports, batch limits, public links.
# Uploaded import files are stored here until their job ends (then deleted).
HUB_IMPORT_DIR = Path(env.str("HUB_IMPORT_DIR", default="") or VAR_DIR / "imports")
HUB_IMPORT_MAX_BYTES = env.int("HUB_IMPORT_MAX_BYTES", default=200 * 1024 * 1024)
# --- Campaigns (hub/campaigns, docs/campaigns.md) ---
# Most outbox rows one dispatcher step makes (one transaction with the cursor and quota).
HUB_CAMPAIGN_SLICE = env.int("HUB_CAMPAIGN_SLICE", default=500)
# A campaign without hour_speed keeps at most this many rows waiting for the workers.
HUB_CAMPAIGN_BACKLOG = env.int("HUB_CAMPAIGN_BACKLOG", default=2000)
# One dispatcher slice (a task, a top-up or the pacer's call) makes rows for at most this long.
HUB_CAMPAIGN_SLICE_SECONDS = env.float("HUB_CAMPAIGN_SLICE_SECONDS", default=1.0)
# A top-up (run in the delivering thread after a campaign row's outcome): at most this long,
# at most once per HUB_CAMPAIGN_TOPUP_SECONDS per campaign and worker process.
HUB_CAMPAIGN_TOPUP_BUDGET_SECONDS = env.float("HUB_CAMPAIGN_TOPUP_BUDGET_SECONDS", default=0.5)
HUB_CAMPAIGN_TOPUP_SECONDS = env.float("HUB_CAMPAIGN_TOPUP_SECONDS", default=0.25)
# The pacer task hands over to a fresh one after this long (well inside Q_TIMEOUT).
HUB_CAMPAIGN_RUN_SECONDS = env.int("HUB_CAMPAIGN_RUN_SECONDS", default=max(10, Q_TIMEOUT // 4))
# The pacer sleeps at most this long between looks; a finishing campaign is looked at every 5x.
HUB_CAMPAIGN_POLL_SECONDS = env.float("HUB_CAMPAIGN_POLL_SECONDS", default=0.2)
# A pacer whose lease has not beaten for this long is taken for dead (a new one is queued).
HUB_CAMPAIGN_PACER_STALE_SECONDS = env.float("HUB_CAMPAIGN_PACER_STALE_SECONDS", default=10.0)
# A running campaign whose dispatcher has not beaten for this long gets a new one (sweeper).
HUB_CAMPAIGN_STALE_SECONDS = env.int("HUB_CAMPAIGN_STALE_SECONDS", default=60)
# The length of the "hour" in hour_speed: 3600. Tests and benches may scale time down.
HUB_CAMPAIGN_HOUR_SECONDS = env.float("HUB_CAMPAIGN_HOUR_SECONDS", default=3600.0)
# Rows committed per transaction (each commit is also the job's resume checkpoint).
HUB_IMPORT_CHUNK_ROWS = env.int("HUB_IMPORT_CHUNK_ROWS", default=5000)
# An import task stops after this long and queues its own continuation, well inside Q_TIMEOUT
# (which would kill it); 0 = no limit (the contacts_import command).
HUB_IMPORT_TIME_BUDGET_SECONDS = env.int("HUB_IMPORT_TIME_BUDGET_SECONDS", default=max(10, Q_TIMEOUT // 2))
# A running import without progress for this long lost its worker: the sweeper resumes it
# from its checkpoint, at most HUB_IMPORT_MAX_RESUMES times, then fails it (status -3).
HUB_IMPORT_STALE_SECONDS = env.int("HUB_IMPORT_STALE_SECONDS", default=Q_TIMEOUT + 60)
HUB_IMPORT_MAX_RESUMES = env.int("HUB_IMPORT_MAX_RESUMES", default=3)
HUB_CONTACTS_BATCH_MAX = env.int("HUB_CONTACTS_BATCH_MAX", default=500)
HUB_CONTACTS_PAGE_MAX = env.int("HUB_CONTACTS_PAGE_MAX", default=1000)
# Pause between two chunks of a list being emptied or deleted, so the send path gets the
# database in between (hub.contacts.store.delete_all).
HUB_CONTACTS_DELETE_PAUSE_MS = env.int("HUB_CONTACTS_DELETE_PAUSE_MS", default=20)
# Scheme and host of public links in mails (unsubscribe, confirm), e.g. https://mail.example.com.
# Empty: unsubscribe_url() paths stay relative, and double opt-in lists cannot send confirmations.
HUB_PUBLIC_URL = env.str("HUB_PUBLIC_URL", default="")
HUB_CONFIRM_MAX_AGE_SECONDS = env.int("HUB_CONFIRM_MAX_AGE_SECONDS", default=7 * 86400)

# Templates (hub.mailtemplates, docs/templates.md): the largest HTML or text body of a
# template (UTF-8 bytes), and the link count over which the check warns (yellow).
HUB_TEMPLATE_MAX_BODY_BYTES = env.int("HUB_TEMPLATE_MAX_BODY_BYTES", default=1024 * 1024)
HUB_TEMPLATE_MAX_LINKS = env.int("HUB_TEMPLATE_MAX_LINKS", default=50)
# Sending domains (hub.domains): DNS verification, DKIM, mailboxes.
# The resolver the checks ask, "host:port" (or "host"); empty = the system's resolver.
HUB_DNS_RESOLVER = env.str("HUB_DNS_RESOLVER", default="")
HUB_DNS_TIMEOUT = env.float("HUB_DNS_TIMEOUT", default=5.0)
# What a customer's domain must publish: SPF `include:HUB_SPF_INCLUDE`, MX `HUB_MX_HOST`, and
# the DKIM key at `<selector>._domainkey.<domain>` (first selector HUB_DKIM_SELECTOR).
HUB_SPF_INCLUDE = env.str("HUB_SPF_INCLUDE", default="spf.smtphub.invalid")
HUB_MX_HOST = env.str("HUB_MX_HOST", default="mx.smtphub.invalid")
HUB_DKIM_SELECTOR = env.str("HUB_DKIM_SELECTOR", default="hub")
# Also make an Ed25519 key per domain (a second signature, RFC 8463).
HUB_DKIM_ED25519 = env.bool("HUB_DKIM_ED25519", default=True)
HUB_DKIM_KEY_CACHE_SECONDS = env.int("HUB_DKIM_KEY_CACHE_SECONDS", default=60)
# Re-check each domain's DNS after this many minutes (the schedule runs every 10 minutes and
# checks at most HUB_DOMAIN_RECHECK_BATCH domains per run).
HUB_DOMAIN_RECHECK_MINUTES = env.int("HUB_DOMAIN_RECHECK_MINUTES", default=360)
HUB_DOMAIN_RECHECK_BATCH = env.int("HUB_DOMAIN_RECHECK_BATCH", default=200)
HUB_DOMAIN_CHECK_MAX = env.int("HUB_DOMAIN_CHECK_MAX", default=20)
HUB_MAILBOX_PASSWORD_MIN = env.int("HUB_MAILBOX_PASSWORD_MIN", default=8)
# Direct delivery (a server of kind "direct", hub.delivery.direct, docs/direct-delivery.md):
# MX lookups ask HUB_DNS_RESOLVER. The EHLO name and source address (each server may override
# both), the port of every MX host (25; tests point it at their sinks), IPv6 addresses
# (tried after IPv4 ones), and the MX hosts tried per domain and attempt.
HUB_DIRECT_HELO_NAME = env.str("HUB_DIRECT_HELO_NAME", default="") or HUB_DOMAIN
HUB_DIRECT_SOURCE_ADDRESS = env.str("HUB_DIRECT_SOURCE_ADDRESS", default="")
HUB_DIRECT_PORT = env.int("HUB_DIRECT_PORT", default=25)
HUB_DIRECT_IPV6 = env.bool("HUB_DIRECT_IPV6", default=True)
HUB_DIRECT_MAX_MX_HOSTS = env.int("HUB_DIRECT_MAX_MX_HOSTS", default=5)
# MX hosts at private, loopback or otherwise non-public addresses are refused unless this is
# on (a hub delivering inside its own network; the tests' sinks on 127.0.0.x).
HUB_DIRECT_ALLOW_PRIVATE = env.bool("HUB_DIRECT_ALLOW_PRIVATE", default=False)
# MTA-STS (RFC 8461): a domain's `enforce` policy makes TLS with a valid certificate for a
# listed MX host mandatory. The policy host's HTTPS port (443), the longest a policy is cached,
# and a CA bundle used instead of the system's for these verifications (empty = the system's).
HUB_DIRECT_MTA_STS = env.bool("HUB_DIRECT_MTA_STS", default=True)
HUB_DIRECT_MTA_STS_PORT = env.int("HUB_DIRECT_MTA_STS_PORT", default=443)
HUB_DIRECT_MTA_STS_CACHE_SECONDS = env.int("HUB_DIRECT_MTA_STS_CACHE_SECONDS", default=86400)
HUB_DIRECT_TLS_CA_FILE = env.str("HUB_DIRECT_TLS_CA_FILE", default="")
# MX answers are cached for their TTL, at most this long; "no such domain" this long.
HUB_DIRECT_MX_CACHE_MAX_SECONDS = env.int("HUB_DIRECT_MX_CACHE_MAX_SECONDS", default=3600)
HUB_DIRECT_MX_NEGATIVE_SECONDS = env.int("HUB_DIRECT_MX_NEGATIVE_SECONDS", default=300)
# Limits of a destination without a preset (one recipient domain), created at first use.
HUB_DIRECT_DEFAULT_CONNECTIONS = env.int("HUB_DIRECT_DEFAULT_CONNECTIONS", default=5)
HUB_DIRECT_DEFAULT_RATE = env.int("HUB_DIRECT_DEFAULT_RATE", default=0)
# Waiting for one of a destination's connections; then the domain waits this long (no attempt counted).
HUB_DIRECT_SLOT_WAIT_SECONDS = env.float("HUB_DIRECT_SLOT_WAIT_SECONDS", default=2.0)
HUB_DIRECT_BUSY_RETRY_SECONDS = env.float("HUB_DIRECT_BUSY_RETRY_SECONDS", default=5.0)
# Adaptive backoff: a "too many" reply halves the destination's connections and rate and
# pauses it BACKOFF_SECONDS x 2^(level-1) (at most BACKOFF_MAX_SECONDS); an unlimited rate is
# first cut to BACKOFF_START_RATE per minute. Every RECOVERY_EVERY deliveries without a
# deferral add one connection and a tenth of the limit back (additive increase).
HUB_DIRECT_BACKOFF_SECONDS = env.float("HUB_DIRECT_BACKOFF_SECONDS", default=60.0)
HUB_DIRECT_BACKOFF_MAX_SECONDS = env.float("HUB_DIRECT_BACKOFF_MAX_SECONDS", default=900.0)
HUB_DIRECT_BACKOFF_START_RATE = env.int("HUB_DIRECT_BACKOFF_START_RATE", default=60)
HUB_DIRECT_RECOVERY_EVERY = env.int("HUB_DIRECT_RECOVERY_EVERY", default=10)
HUB_DIRECT_DEFERRALS_KEPT = env.int("HUB_DIRECT_DEFERRALS_KEPT", default=50)

# Event webhooks (hub.webhooks, docs/webhooks.md).
# Targets: http/https only; a host resolving to a private, loopback, link-local or otherwise
# non-global address is refused (SSRF), unless it lies in one of these networks (CIDRs,
# e.g. "10.0.0.0/8" for an internal receiver; tests allow 127.0.0.0/8).
HUB_WEBHOOK_ALLOW_NETWORKS = env.list("HUB_WEBHOOK_ALLOW_NETWORKS", default=[])
HUB_WEBHOOK_MAX_ENDPOINTS = env.int("HUB_WEBHOOK_MAX_ENDPOINTS", default=10)
# One POST: connect + send + answer within this many seconds; at most this many events.
HUB_WEBHOOK_TIMEOUT_SECONDS = env.float("HUB_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
HUB_WEBHOOK_BATCH = env.int("HUB_WEBHOOK_BATCH", default=100)
# Retries: attempt n waits min(BASE * 2**(n-1), MAX) seconds times a random 0.5..1.0
# (jitter); after HUB_WEBHOOK_MAX_ATTEMPTS attempts the event is failed.
HUB_WEBHOOK_RETRY_BASE_SECONDS = env.int("HUB_WEBHOOK_RETRY_BASE_SECONDS", default=30)
HUB_WEBHOOK_RETRY_MAX_SECONDS = env.int("HUB_WEBHOOK_RETRY_MAX_SECONDS", default=3600)
HUB_WEBHOOK_MAX_ATTEMPTS = env.int("HUB_WEBHOOK_MAX_ATTEMPTS", default=10)
# Endpoints posted to at once by one drain task (each POST in a thread of its own).
HUB_WEBHOOK_THREADS = env.int("HUB_WEBHOOK_THREADS", default=4)
HUB_WEBHOOK_DRAIN_SECONDS = env.int("HUB_WEBHOOK_DRAIN_SECONDS", default=max(10, Q_TIMEOUT // 3))
# Each process keeps which accounts subscribe to what for this long (changes made in the same
# process apply at once; in other processes within this many seconds).
HUB_WEBHOOK_CACHE_SECONDS = env.float("HUB_WEBHOOK_CACHE_SECONDS", default=10.0)
# Delivered and failed events and the attempt log are deleted after this many days; an event
# still waiting after HUB_WEBHOOK_MAX_AGE_HOURS (e.g. its endpoint is disabled) is failed.
HUB_WEBHOOK_KEEP_DAYS = env.int("HUB_WEBHOOK_KEEP_DAYS", default=30)
HUB_WEBHOOK_MAX_AGE_HOURS = env.int("HUB_WEBHOOK_MAX_AGE_HOURS", default=72)
# Tracking (hub.tracking, docs/tracking.md). Host (or scheme://host) of tracking URLs when a
# campaign has no verified tracking domain of its own (empty: HUB_PUBLIC_URL's).
HUB_TRACK_DEFAULT_DOMAIN = env.str("HUB_TRACK_DEFAULT_DOMAIN", default="")
HUB_TRACK_SCHEME = env.str("HUB_TRACK_SCHEME", default="https")
# A customer's tracking domain must be a CNAME of this host (V28 3.7; ours, not the vendor's).
HUB_TRACK_CNAME_TARGET = env.str("HUB_TRACK_CNAME_TARGET", default="track.smtphub.invalid")
# Re-check each tracking domain's CNAME after this many minutes (a schedule, every 10 minutes).
HUB_TRACK_RECHECK_MINUTES = env.int("HUB_TRACK_RECHECK_MINUTES", default=360)
# The offline IP location database (.mmdb, city level); empty = the bundled GeoLite2-City.
HUB_TRACK_GEOIP_DB = env.str("HUB_TRACK_GEOIP_DB", default="")
HUB_TRACK_GEOIP_LANGUAGE = env.str("HUB_TRACK_GEOIP_LANGUAGE", default="zh-CN")
# Machine opens: a hit this soon after delivery is a scanner's; clicks on HUB_TRACK_BURST_LINKS
# different links within HUB_TRACK_BURST_SECONDS are a scanner's.
HUB_TRACK_SCANNER_SECONDS = env.float("HUB_TRACK_SCANNER_SECONDS", default=10.0)
HUB_TRACK_BURST_LINKS = env.int("HUB_TRACK_BURST_LINKS", default=3)
HUB_TRACK_BURST_SECONDS = env.float("HUB_TRACK_BURST_SECONDS", default=2.0)
# A web process queues the hit processor at most once per this many seconds.
HUB_TRACK_WAKE_SECONDS = env.float("HUB_TRACK_WAKE_SECONDS", default=1.0)

# Django refuses larger form bodies itself; keep its limit above ours so our 413 answers.
DATA_UPLOAD_MAX_MEMORY_SIZE = HUB_MAX_REQUEST_BYTES + 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = HUB_MAX_REQUEST_BYTES + 1024

# One format, one language (English: log messages are not translated, and django-q2's are
# forced to English in hub.apps), one time zone (TIME_ZONE: Django sets the process's TZ to it;
# gunicorn.conf.py does the same for gunicorn's master and uses this same format). INFO is one
# line per HTTP request, SMTP session or message; per-command detail is DEBUG.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S %z"
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": LOG_FORMAT, "datefmt": LOG_DATEFMT}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # aiosmtpd logs every SMTP command and reply at INFO on "mail.log" (and its setup
        # warnings there too): that is per-command detail, DEBUG for the hub. At LOG_LEVEL
        # DEBUG it comes back.
        "mail.log": {"level": "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"},
        # python-environ says at INFO on every start that a missing .env was not found.
        "environ": {"level": "WARNING"},
    },
}

# --- Admin back office (django-unfold) -----------------------------------------------------
# Admin-only settings. Labels and links come from hub.admin.nav, per request, so settings
# import no app code and the sidebar follows the user's language.
UNFOLD = {
    "SITE_TITLE": "SMTP Hub",
    "SITE_HEADER": "SMTP Hub",
    "SITE_SUBHEADER": "hub.admin.nav.site_subheader",
    "SITE_SYMBOL": "forward_to_inbox",
    "SITE_FAVICONS": [{"rel": "icon", "type": "image/svg+xml", "href": "hub.admin.nav.favicon_url"}],
    "SITE_URL": "/admin/",
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "SHOW_LANGUAGES": True,  # the language switch in the user menu (browser language by default)
    "DASHBOARD_CALLBACK": "hub.admin.dashboard.dashboard_callback",
    "GLOBAL_CALLBACK": "hub.admin.nav.global_context",
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        "navigation": "hub.admin.nav.navigation",
    },
    "COLORS": {
        "primary": {
            "50": "oklch(97% .014 254.604)",
            "100": "oklch(93.2% .032 255.585)",
            "200": "oklch(88.2% .059 254.128)",
            "300": "oklch(80.9% .105 251.813)",
            "400": "oklch(70.7% .165 254.624)",
            "500": "oklch(62.3% .214 259.815)",
            "600": "oklch(54.6% .245 262.881)",
            "700": "oklch(48.8% .243 264.376)",
            "800": "oklch(42.4% .199 265.638)",
            "900": "oklch(37.9% .146 265.522)",
            "950": "oklch(28.2% .091 267.935)",
        },
    },
}

# The admin's login page is the only login: after it, go to the dashboard (unfold's login
# form has no "next" field, so Django would send a bare /admin/login/ to /accounts/profile/).
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"
# "Test connection" / "send test email" in the admin run inside a web request: each SMTP
# step waits at most min(the server's timeout, this many seconds).
HUB_ADMIN_TEST_TIMEOUT = env.int("HUB_ADMIN_TEST_TIMEOUT", default=20)

# --- EDM APIs (V28-compatible under /apinew/, native JSON under /api/v1/) -------------------
# Legacy `username`/`password` query parameters instead of HTTP Basic. Off: URLs (and so the
# AppSecret) end up in proxy and web server logs. Turn on only for a client that cannot send
# an Authorization header.
HUB_V28_QUERY_CREDENTIALS = env.bool("HUB_V28_QUERY_CREDENTIALS", default=False)
# Body cap of an ordinary call (a 500-record ml_addr batch is well under 1 MB) and of a file
# upload (ml-addr-add-file, the native import); any one parameter's length.
HUB_V28_MAX_REQUEST_BYTES = env.int("HUB_V28_MAX_REQUEST_BYTES", default=2 * 1024 * 1024)
HUB_V28_MAX_UPLOAD_BYTES = env.int("HUB_V28_MAX_UPLOAD_BYTES", default=200 * 1024 * 1024)
HUB_V28_MAX_PARAM_CHARS = env.int("HUB_V28_MAX_PARAM_CHARS", default=2000)

SPECTACULAR_SETTINGS = {
    "TITLE": "SMTP Hub API",
    "DESCRIPTION": "Native JSON API of the EDM platform: contact lists and contacts, imports, templates, "
                   "campaigns, sending domains and mailboxes, statistics. "
                   "Authenticate with HTTP Basic: AppID as the user name, AppSecret as the password.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["api.v1.schema.only_native_api"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Bounces and complaints (docs/bounces.md). VERP: servers with "VERP return path" on send with
# MAIL FROM b-<token>@HUB_BOUNCE_DOMAIN (empty: never); that domain's MX must point at the
# inbound listener (manage.py hub_inbound), which accepts only such signed addresses.
HUB_BOUNCE_DOMAIN = env.str("HUB_BOUNCE_DOMAIN", default="").strip().lower()
HUB_INBOUND_HOST = env.str("HUB_INBOUND_HOST", default="127.0.0.1")
HUB_INBOUND_PORT = env.int("HUB_INBOUND_PORT", default=2526)
# A DSN or ARF report larger than this is refused (552) before it is read to the end.
HUB_INBOUND_MAX_BYTES = env.int("HUB_INBOUND_MAX_BYTES", default=2 * 1024 * 1024)
HUB_INBOUND_RECIPIENTS = env.int("HUB_INBOUND_RECIPIENTS", default=10)
HUB_INBOUND_TIMEOUT = env.int("HUB_INBOUND_TIMEOUT", default=60)
# IMAP bounce mailboxes (hub.inbound.imap; polled by the "inbound-imap-poll" schedule): at
# most this many messages per mailbox and run.
HUB_IMAP_BATCH = env.int("HUB_IMAP_BATCH", default=200)
HUB_IMAP_TIMEOUT = env.int("HUB_IMAP_TIMEOUT", default=30)
# Suppression policy defaults for accounts without their own (admin: Suppression policies):
# suppress an address after HUB_SOFT_BOUNCE_LIMIT soft bounces within HUB_SOFT_BOUNCE_DAYS.
HUB_SOFT_BOUNCE_LIMIT = env.int("HUB_SOFT_BOUNCE_LIMIT", default=3)
HUB_SOFT_BOUNCE_DAYS = env.int("HUB_SOFT_BOUNCE_DAYS", default=7)
