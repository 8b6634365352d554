from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StatsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "hub.stats"
    label = "stats"
    verbose_name = _("Statistics")

    def ready(self) -> None:
        # The delivery engine tells hub.events what happened to each recipient, inside the
        # transaction that records it; the counters are written in that same transaction.
        from hub import events

        from .counting import on_event

        events.happened.connect(on_event, dispatch_uid="hub.stats.counting")
