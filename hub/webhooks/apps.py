from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WebhooksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "hub.webhooks"
    label = "webhooks"
    verbose_name = _("Webhooks")

    def ready(self) -> None:
        # The core never imports this app: it emits hub.events, which this receiver hears,
        # inside the emitter's transaction (the transactional outbox, see subscriptions.py).
        from django.db.models.signals import post_delete, post_save

        from hub import events
        from hub.models import App

        from . import checks, subscriptions  # noqa: F401  (checks registers itself)
        from .models import Endpoint

        events.happened.connect(subscriptions.on_event, dispatch_uid="hub.webhooks")
        for model in (Endpoint, App):
            post_save.connect(subscriptions.invalidate_on_change, sender=model, dispatch_uid=f"webhooks-{model}")
            post_delete.connect(subscriptions.invalidate_on_change, sender=model, dispatch_uid=f"webhooks-d-{model}")
