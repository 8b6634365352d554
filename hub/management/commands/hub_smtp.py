"""`hub_smtp add|list|disable|enable`: manage SMTP servers from the shell (JSON output)."""

import sys

from django.core.management.base import BaseCommand, CommandError

from hub.models import SmtpServer

from ._util import dump, full_clean_or_fail


class Command(BaseCommand):
    help = "Manage SMTP servers. Output is JSON."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add a server; prints {\"id\": N}")
        add.add_argument("--name", required=True)
        add.add_argument("--kind", choices=SmtpServer.Kind.values, default="relay",
                         help="relay (an upstream server: --host, --port) or direct (to recipients' MX hosts)")
        add.add_argument("--host", default="", help="required for a relay")
        add.add_argument("--port", type=int, default=25)
        add.add_argument("--helo-name", default="", help="direct: the EHLO name (default HUB_DIRECT_HELO_NAME)")
        add.add_argument("--source-address", default=None, help="direct: the local IP to connect from")
        add.add_argument("--security", choices=SmtpServer.Security.values, default="none")
        add.add_argument("--username", default="")
        pw = add.add_mutually_exclusive_group()
        pw.add_argument("--password", default="", help="visible in the process list; prefer --password-stdin")
        pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        add.add_argument("--from-email", default="")
        add.add_argument("--timeout", type=int, default=30)
        add.add_argument("--no-verify-tls", action="store_true", help="accept a self-signed certificate")
        add.add_argument("--limit-per-minute", type=int, default=0)
        add.add_argument("--limit-per-hour", type=int, default=0)
        add.add_argument("--limit-per-day", type=int, default=0)
        add.add_argument("--max-connections", type=int, default=5,
                         help="open connections to this server at most, across all workers (default 5)")
        sub.add_parser("list", help="one JSON object per line")
        for name in ("disable", "enable"):
            p = sub.add_parser(name)
            p.add_argument("id", type=int)

    def handle(self, *args, **opts):
        action = opts["action"]
        if action == "add":
            return self.add(opts)
        if action == "list":
            for s in SmtpServer.objects.order_by("id"):
                self.stdout.write(dump({
                    "id": s.id, "name": s.name, "kind": s.kind, "host": s.host, "port": s.port, "security": s.security,
                    "username": s.username, "from_email": s.sender, "enabled": s.enabled,
                    "timeout": s.timeout, "limit_per_minute": s.limit_per_minute,
                    "limit_per_hour": s.limit_per_hour, "limit_per_day": s.limit_per_day,
                    "max_connections": s.max_connections,
                }))
            return
        server = SmtpServer.objects.filter(pk=opts["id"]).first()
        if server is None:
            raise CommandError(f"no SMTP server with id {opts['id']}")
        server.enabled = action == "enable"
        server.save(update_fields=["enabled", "updated_at"])
        self.stdout.write(dump({"id": server.id, "enabled": server.enabled}))

    def add(self, opts):
        password = sys.stdin.readline().rstrip("\r\n") if opts["password_stdin"] else opts["password"]
        for limit in ("limit_per_minute", "limit_per_hour", "limit_per_day"):
            if opts[limit] < 0:
                raise CommandError(f"--{limit.replace('_', '-')} must be 0 (no limit) or more")
        server = SmtpServer(
            name=opts["name"], kind=opts["kind"], host=opts["host"], port=opts["port"], security=opts["security"],
            helo_name=opts["helo_name"], source_address=opts["source_address"] or None,
            username=opts["username"], from_email=opts["from_email"], timeout=opts["timeout"],
            verify_tls=not opts["no_verify_tls"], limit_per_minute=opts["limit_per_minute"],
            limit_per_hour=opts["limit_per_hour"], limit_per_day=opts["limit_per_day"],
            max_connections=opts["max_connections"],
        )
        server.set_password(password)
        full_clean_or_fail(server)
        if not server.sender:
            raise CommandError("give --from-email or --username: the server needs a sender address")
        server.save()
        self.stdout.write(dump({"id": server.id}))
