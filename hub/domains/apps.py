from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DomainsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "hub.domains"
    label = "domains"
    verbose_name = _("Sending domains")

    def ready(self) -> None:
        # The core never imports this app: it calls the hooks registered here.
        from hub import access
        from hub.delivery import signing

        from . import checks, mailboxes, signer  # noqa: F401  (checks registers itself)

        signing.register(signer.sign)
        access.register_credential_checker(mailboxes.check_login)
