from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InboundConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "hub.inbound"
    label = "inbound"
    verbose_name = _("Bounces and complaints")

    def ready(self) -> None:
        # Unsubscribes (told through hub.events by whoever records them) suppress the
        # address for the account, as its policy says.
        from hub import events

        from . import receivers

        events.happened.connect(receivers.on_event, dispatch_uid="inbound.unsubscribes")
