"""django-post_office, the peer, as its README sets it up: defaults everywhere except the
database file, the SMTP port (the bench's sink) and, when asked, BATCH_SIZE.
Environment: BENCH_PO_DB (SQLite file), BENCH_SINK_PORT, BENCH_PO_BATCH_SIZE (optional)."""

import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django.contrib.contenttypes", "post_office"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_PO_DB", "/tmp/post_office-bench.sqlite3"),
        # Only so that two senders at once wait for each other instead of failing at once.
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
EMAIL_BACKEND = "post_office.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ.get("BENCH_SINK_PORT", "25"))
EMAIL_TIMEOUT = 30
POST_OFFICE = {"BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"}}
if os.environ.get("BENCH_PO_BATCH_SIZE"):
    POST_OFFICE["BATCH_SIZE"] = int(os.environ["BENCH_PO_BATCH_SIZE"])
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"post_office": {"handlers": ["console"], "level": "WARNING"}},
}
# post_office renders subject and bodies as Django templates when it queues a message.
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
