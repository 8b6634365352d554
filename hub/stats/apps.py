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
        # The campaign's page, its API progress and V28 list-task read the counters instead
        # of counting the campaign's SendLog rows (hub.campaigns may not import this app).
        from hub.campaigns.services import register_outcome_counter

        from .report import campaign_outcomes

        register_outcome_counter(campaign_outcomes)
