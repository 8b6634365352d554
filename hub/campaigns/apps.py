from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "hub.campaigns"
    label = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self) -> None:
        # The core builds campaign rows' messages through this renderer (hub.delivery.render):
        # it cannot import this app.
        from hub import events
        from hub.delivery import render as seam

        from .render import prefetch_contacts, render_row
        from .topup import on_event

        seam.register(render_row, prefetch_contacts)
        # A full-speed campaign is topped up by its own rows' outcomes (topup.py).
        events.happened.connect(on_event, dispatch_uid="hub.campaigns.topup")
