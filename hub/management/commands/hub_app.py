"""`hub_app add|list|disable|enable|rotate-secret`: manage apps from the shell (JSON output).
The AppSecret is printed once, at `add` and `rotate-secret`; only its digest is stored."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from hub.models import Account, App, AppServer, SmtpServer

from ._util import dump, full_clean_or_fail, parse_ids
from .hub_account import find_account


class Command(BaseCommand):
    help = "Manage apps (AppID/AppSecret). Output is JSON."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help='add an app; prints {"appid": N, "appsecret": "..."}')
        add.add_argument("--name", required=True)
        add.add_argument("--smtp", required=True, help="SMTP server ids, primary first: 1 or 1,2")
        add.add_argument("--from-name", default="")
        add.add_argument("--type", choices=App.Type.values, default=App.Type.SITE)
        add.add_argument("--allowed-ips", default="", help="comma-separated IPs/CIDRs")
        add.add_argument("--rate-limit", type=int, default=0, help="API requests per minute, 0 = no limit")
        add.add_argument("--account", default="",
                         help="the account's id or name (default: the default account, unlimited)")
        sub.add_parser("list", help="one JSON object per line")
        for name in ("disable", "enable", "rotate-secret"):
            p = sub.add_parser(name)
            p.add_argument("id", type=int)
            if name == "rotate-secret":
                p.add_argument("--grace", type=int, default=0, metavar="SECONDS",
                               help="keep accepting the old secret this long (default: 0, not at all)")

    def handle(self, *args, **opts):
        action = opts["action"]
        if action == "add":
            return self.add(opts)
        if action == "list":
            for app in App.objects.order_by("id").prefetch_related("server_links"):
                self.stdout.write(dump({
                    "appid": app.id, "name": app.name, "type": app.type, "from_name": app.from_name,
                    "enabled": app.enabled, "smtp": [link.server_id for link in app.server_links.all()],
                    "account": app.account_id,
                }))
            return
        app = App.objects.filter(pk=opts["id"]).first()
        if app is None:
            raise CommandError(f"no app with AppID {opts['id']}")
        if action == "rotate-secret":
            if opts["grace"] < 0:
                raise CommandError("--grace must be 0 or more seconds")
            secret = app.rotate_secret(grace_seconds=opts["grace"])
            app.save(update_fields=["secret_digest", "previous_secret_digest", "previous_secret_expires_at",
                                    "updated_at"])
            out = {"appid": app.id, "appsecret": secret}
            if app.previous_secret_expires_at:
                out["old_secret_valid_until"] = app.previous_secret_expires_at.isoformat()
            self.stdout.write(dump(out))
            return
        app.enabled = action == "enable"
        app.save(update_fields=["enabled", "updated_at"])
        self.stdout.write(dump({"appid": app.id, "enabled": app.enabled}))

    def add(self, opts):
        server_ids = parse_ids(opts["smtp"])
        if len(set(server_ids)) != len(server_ids):
            raise CommandError("--smtp lists a server twice")
        found = set(SmtpServer.objects.filter(pk__in=server_ids).values_list("id", flat=True))
        missing = [i for i in server_ids if i not in found]
        if missing:
            raise CommandError(f"no SMTP server with id {', '.join(map(str, missing))}")
        if opts["rate_limit"] < 0:
            raise CommandError("--rate-limit must be 0 (no limit) or more")
        account = find_account(opts["account"]) if opts["account"] else Account.default()
        app = App(name=opts["name"], type=opts["type"], from_name=opts["from_name"], account=account,
                  allowed_ips=opts["allowed_ips"].replace(",", "\n"), rate_limit_per_minute=opts["rate_limit"])
        secret = app.rotate_secret()
        full_clean_or_fail(app)
        with transaction.atomic():
            app.save()
            AppServer.objects.bulk_create(
                [AppServer(app=app, server_id=sid, priority=i) for i, sid in enumerate(server_ids)]
            )
        self.stdout.write(dump({"appid": app.id, "appsecret": secret}))
