import signal
import threading

from django.core.management.base import BaseCommand

from apps.gateway.server import GatewayOptions, GatewayServer


class Command(BaseCommand):
    help = (
        "Run the inbound SMTP gateway (or LMTP with --lmtp, behind Postfix) until SIGTERM or "
        "SIGINT; messages being stored are committed before it stops."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=2525)
        parser.add_argument("--lmtp", action="store_true", help="speak LMTP (RFC 2033)")
        parser.add_argument(
            "--grace", type=float, default=30.0, help="seconds to finish storing on stop"
        )

    def handle(self, *args, host: str, port: int, lmtp: bool, grace: float, **options) -> None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_args: stop.set())
        server = GatewayServer(GatewayOptions.from_settings(lmtp=lmtp), host=host, port=port)
        server.start()
        self.stdout.write(
            f"smtp_gateway: {'LMTP' if lmtp else 'SMTP'} on {host}:{server.port}", ending="\n"
        )
        self.stdout.flush()
        while not stop.wait(timeout=1):
            pass
        self.stdout.write("smtp_gateway: stopping")
        server.stop(grace=grace)
        self.stdout.write("smtp_gateway: stopped")
