import multiprocessing
import signal
import socket
import sys
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from apps.gateway.server import GatewayOptions, GatewayServer

READY_TIMEOUT = 60.0  # seconds for every process to listen


class Command(BaseCommand):
    help = (
        "Run the inbound SMTP gateway (or LMTP with --lmtp, behind Postfix) until SIGTERM or "
        "SIGINT; messages being stored are committed before it stops. With --processes N, N "
        "processes share the port (SO_REUSEPORT: the kernel spreads the connections), each "
        "with its own event loop and database connections."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=2525)
        parser.add_argument("--lmtp", action="store_true", help="speak LMTP (RFC 2033)")
        parser.add_argument(
            "--grace", type=float, default=30.0, help="seconds to finish storing on stop"
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="gateway processes on the same port (one per core); default 1",
        )

    def handle(
        self, *args, host: str, port: int, lmtp: bool, grace: float, processes: int, **options
    ) -> None:
        if processes < 1:
            raise CommandError("--processes must be at least 1.")
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_args: stop.set())
        gateway_options = GatewayOptions.from_settings(lmtp=lmtp)
        protocol = "LMTP" if lmtp else "SMTP"
        if processes == 1:
            server = GatewayServer(gateway_options, host=host, port=port)
            server.start()
            self._say(f"smtp_gateway: {protocol} on {host}:{server.port}")
            while not stop.wait(timeout=1):
                pass
            self._say("smtp_gateway: stopping")
            server.stop(grace=grace)
            self._say("smtp_gateway: stopped")
            return
        pool = _Pool(gateway_options, host=host, port=port, grace=grace, size=processes)
        try:
            pool.start()
            self._say(f"smtp_gateway: {protocol} on {host}:{pool.port} ({processes} processes)")
            while not stop.wait(timeout=1):
                for index in pool.replace_dead():
                    self.stderr.write(f"smtp_gateway: process {index} died, started again")
        finally:
            self._say("smtp_gateway: stopping")
            pool.stop()
        self._say("smtp_gateway: stopped")

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()


def _serve(options: GatewayOptions, host: str, port: int, grace: float, ready) -> None:
    """One gateway process: its own listening socket on the shared port, event loop and
    database threads, until SIGTERM (or SIGINT, which a terminal sends to the whole group)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop.set())
    server = GatewayServer(options, host=host, port=port, reuse_port=True)
    try:
        server.start()
    except BaseException:
        ready.put(False)
        raise
    ready.put(True)
    while not stop.wait(timeout=1):
        pass
    server.stop(grace=grace)
    sys.stdout.flush()


class _Pool:
    """``size`` forked gateway processes listening on one port with ``SO_REUSEPORT``. The
    parent holds a bound (not listening) socket on that port meanwhile, so that a process
    started again after a crash gets the same port; it receives no connection."""

    def __init__(self, options: GatewayOptions, *, host: str, port: int, grace: float, size: int):
        self.options, self.host, self.grace, self.size = options, host, grace, size
        self.context = multiprocessing.get_context("fork")
        self.ready = self.context.Queue()
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        self.placeholder = socket.socket(family, kind, proto)
        self.placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.placeholder.bind(address)
        self.port = self.placeholder.getsockname()[1]
        self.children: list = []
        self.stopping = False

    def _spawn(self):
        connections.close_all()  # no database connection shared across fork
        child = self.context.Process(
            target=_serve,
            args=(self.options, self.host, self.port, self.grace, self.ready),
            daemon=False,
        )
        child.start()
        return child

    def start(self) -> None:
        self.children = [self._spawn() for _ in range(self.size)]
        for _ in range(self.size):
            if not self.ready.get(timeout=READY_TIMEOUT):
                raise CommandError("A gateway process could not start.")

    def replace_dead(self) -> list[int]:
        replaced = []
        for index, child in enumerate(self.children):
            if not self.stopping and not child.is_alive():
                child.join()
                self.children[index] = self._spawn()
                self.ready.get(timeout=READY_TIMEOUT)
                replaced.append(index)
        return replaced

    def stop(self) -> None:
        """SIGTERM to every process (each lets its messages past DATA commit, up to ``grace``
        seconds), then waits for them; SIGKILL for any still there well after that."""
        self.stopping = True
        for child in self.children:
            if child.is_alive():
                child.terminate()
        for child in self.children:
            child.join(timeout=self.grace + 15)
            if child.is_alive():
                child.kill()
                child.join()
        self.placeholder.close()
