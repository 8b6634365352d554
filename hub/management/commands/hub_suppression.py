"""`hub_suppression list|remove`: the recipients an app may not send to after a hard bounce."""

from django.core.management.base import BaseCommand, CommandError

from hub.models import Suppression

from ._util import dump


class Command(BaseCommand):
    help = "List or remove suppressed recipients. Output is JSON."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        ls = sub.add_parser("list", help="one JSON object per line")
        ls.add_argument("--app", type=int, help="only this AppID")
        rm = sub.add_parser("remove", help="allow sending to an address again")
        rm.add_argument("--app", type=int, required=True)
        rm.add_argument("email")

    def handle(self, *args, **opts):
        if opts["action"] == "list":
            qs = Suppression.objects.order_by("id")
            if opts["app"]:
                qs = qs.filter(app_id=opts["app"])
            for s in qs:
                self.stdout.write(dump({"appid": s.app_id, "email": s.email, "smtp_code": s.smtp_code,
                                        "smtp_reply": s.smtp_reply, "created_at": s.created_at.isoformat()}))
            return
        deleted, _ = Suppression.objects.filter(app_id=opts["app"], email=opts["email"].strip().lower()).delete()
        if not deleted:
            raise CommandError(f"{opts['email']} is not suppressed for AppID {opts['app']}")
        self.stdout.write(dump({"appid": opts["app"], "email": opts["email"].strip().lower(), "removed": True}))
