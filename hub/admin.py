"""The back office (Django admin, themed with django-unfold). Each part lives in its own
module; importing them registers the pages:

- hub.admin_servers  SMTP servers: write-only password, test connection, test email, usage
- hub.admin_apps     apps: secret shown once, rotation, ordered servers, integration snippet
- hub.admin_logs     send logs: read-only, filters, search, safe preview, resend, CSV export
- hub.admin_site     site settings (singleton), audit log, task queue, users
- hub.dashboard      the dashboard (settings.UNFOLD["DASHBOARD_CALLBACK"])
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from . import admin_apps, admin_logs, admin_servers, admin_site  # noqa: F401

# The index page is the dashboard.
admin.site.index_title = _("Dashboard")
admin.site.site_title = admin.site.site_header = "SMTP Hub"
