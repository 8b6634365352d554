"""`manage.py smtpd`: run the SMTP submission server in the foreground (SIGTERM/Ctrl-C stop
it gracefully: no new connections, open sessions get HUB_SMTPD_SHUTDOWN_GRACE seconds)."""

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from hub.smtpd import serve


class Command(BaseCommand):
    help = "Run the SMTP submission server (AUTH with AppID / AppSecret)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.HUB_SMTPD_HOST)
        parser.add_argument("--port", type=int, default=settings.HUB_SMTPD_PORT)
        parser.add_argument("--tls-port", type=int, default=settings.HUB_SMTPD_TLS_PORT,
                            help="also listen with implicit TLS on this port (0: off)")

    def handle(self, *args, **opts):
        async def main():
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await serve(opts["host"], opts["port"], opts["tls_port"], stop,
                        ready=lambda: self.stdout.write(f"smtpd ready on {opts['host']}:{opts['port']}", ending="\n"))

        asyncio.run(main())
