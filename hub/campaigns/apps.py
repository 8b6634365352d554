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
        from hub.delivery import render as seam

        from .render import render_row

        seam.register(render_row)
