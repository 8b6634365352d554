"""The back office (Django admin, themed with django-unfold). Each part lives in its own
module; importing them registers the pages:

- servers.py     SMTP servers: write-only password, test connection, test email, usage
- destinations.py  direct delivery's destinations: limits, adaptive state, deferrals, presets
- accounts.py    accounts (tenants): service period, quota top-up with its audit trail, apps
- apps.py        apps: secret shown once, rotation, ordered servers, integration snippet
- logs.py        send logs: read-only, filters, search, safe preview, resend, CSV export
- site.py        site settings (singleton), audit log, task queue, users
- dashboard.py   the dashboard (settings.UNFOLD["DASHBOARD_CALLBACK"])
- nav.py         the sidebar, header and badges (settings.UNFOLD callbacks)
- common.py      what the pages share: the base ModelAdmin, the fast paginator, filters
- forms.py       the admin's forms; i18n_theme.py: the theme's strings for translation
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from . import accounts, apps, destinations, logs, servers, site  # noqa: F401

# The index page is the dashboard.
admin.site.index_title = _("Dashboard")
admin.site.site_title = admin.site.site_header = "SMTP Hub"
