"""`manage.py hub_inbound`: run the inbound SMTP listener for bounces and complaints (the MX of
HUB_BOUNCE_DOMAIN) in the foreground; SIGTERM/Ctrl-C stop it."""

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from hub.inbound.listener import serve


class Command(BaseCommand):
    help = "Run the inbound SMTP listener that accepts bounces and complaints for VERP addresses."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.HUB_INBOUND_HOST)
        parser.add_argument("--port", type=int, default=settings.HUB_INBOUND_PORT)

    def handle(self, *args, **opts):
        if not settings.HUB_BOUNCE_DOMAIN:
            raise CommandError("HUB_BOUNCE_DOMAIN is not set: there are no bounce addresses to accept.")

        async def main():
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await serve(opts["host"], opts["port"], stop,
                        ready=lambda: self.stdout.write(f"inbound ready on {opts['host']}:{opts['port']}"))

        asyncio.run(main())
