"""The core's models, one module per concern (one Django app, label "hub"): import them
from here, as `from hub.models import SendLog`.

- site.py      the hub's own settings (singleton)
- servers.py   upstream SMTP servers, their send-limit slots and connection leases
- accounts.py  customer accounts (tenants, quota), apps (credentials), app-server links
- sendlog.py   SendLog (audit log and outbox), attempts, attachments, suppressions, idempotency
               keys, API rate counters, the drain wake-up flag, running worker clusters
- logins.py    failed-login counters (per IP, per AppID)
- destinations.py  direct delivery's destinations (limits, adaptive state, slots, deferrals)
- suppression.py  each account's suppression policy and the soft bounces it counts"""

from .accounts import Account, App, AppServer, QuotaChange
from .destinations import Destination, DestinationDeferral, DestinationSlot
from .logins import LoginFailureCounter
from .sendlog import (
                     ApiRateCounter,
                     Attachment,
                     DeliveryAttempt,
                     DeliveryWakeup,
                     FailureType,
                     IdempotencyKey,
                     SendLog,
                     Suppression,
                     WorkerCluster,
)
from .servers import ConnectionSlot, SmtpServer, ThrottleSlot
from .site import Site, parse_networks, validate_networks
from .suppression import SoftBounce, SuppressionPolicy

__all__ = ["Account", "ApiRateCounter", "App", "AppServer", "Attachment", "ConnectionSlot", "DeliveryAttempt", "DeliveryWakeup",
           "Destination", "DestinationDeferral", "DestinationSlot",
           "FailureType", "IdempotencyKey", "LoginFailureCounter", "QuotaChange", "SendLog", "Site", "SmtpServer",
           "SoftBounce", "Suppression", "SuppressionPolicy", "ThrottleSlot", "WorkerCluster", "parse_networks", "validate_networks"]
