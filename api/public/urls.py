"""Public pages (no login): reached from links in mails. Included at the site root by
smtphub/urls.py. The tokens are signed (hub.contacts.links)."""

from django.urls import path

from . import tracking, views

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="public-unsubscribe"),
    path("subscribe/confirm/<str:token>/", views.confirm, name="public-confirm"),
    path("view/<str:token>/", views.webview, name="public-webview"),
    # Campaign tracking (hub.tracking.tokens): short, signed, no trailing slash.
    path("t/o/<str:token>.gif", tracking.pixel, name="track-open"),
    path("t/c/<str:token>", tracking.click, name="track-click"),
]
