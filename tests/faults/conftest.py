"""Harness of the fault tests: real processes, killed or restarted on purpose.

- ``Process``: a subprocess in its own process group (SIGKILL reaches a prefork pool too), its
  output in a log file; every process a test starts is stopped at its end.
- ``OwnRedis``: a ``redis-server`` of the test's own on a free port (never the shared one).
- ``OwnPostgres``: a throwaway PostgreSQL cluster (``initdb`` in a temporary directory, run as
  the ``postgres`` user when we are root), to stop and start during a test.
- ``Site``: one mssweb installation of its own — database (a SQLite file, or a database of its
  own on the PostgreSQL server ``DATABASE_URL`` names), var directory, broker — in which the
  test runs Celery workers, the SMTP gateway, management commands and ``tests.faults.agent``.
- ``Sink``: a peer operator's SMTP server (aiosmtpd, STARTTLS with the test PKI) that counts
  what it received by (Message-ID, recipient), answers as a script says, and can hold a
  connection at a chosen moment (``hold_at``) until the test releases it.
- ``tally``: the invariant — every accepted message exists exactly once at the peer, every
  outbox row ends delivered or failed with a report in the sender's inbox — as figures, and a
  one-line summary per fault printed in the terminal summary (CI logs show them).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

REPO = Path(__file__).resolve().parents[2]
PEER_DOMAIN = "peer.mssante.test"
SUMMARIES: list[str] = []


# --- small tools --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.05)


def wait_until(predicate: Callable, *, timeout: float, interval: float = 0.1, what: str = ""):
    """Call ``predicate`` until it returns something true (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or predicate}")
        time.sleep(interval)


class Process:
    """A subprocess in a process group of its own, output to ``log``."""

    def __init__(self, args: list[str], *, env: dict, log: Path, cwd: Path = REPO) -> None:
        self.args = args
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group (a worker and its pool children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, *, timeout: float = 15.0) -> None:
        if not self.alive:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def processes():
    """Start processes with ``processes.start(args, env=…, log=…)``; all stopped at the end."""
    started: list[Process] = []

    class Starter:
        @staticmethod
        def start(args: list[str], *, env: dict, log: Path) -> Process:
            process = Process(args, env=env, log=log)
            started.append(process)
            return process

    yield Starter
    for process in reversed(started):
        process.stop(timeout=5)


# --- Redis of our own -----------------------------------------------------------------------


class OwnRedis:
    def __init__(self, directory: Path, processes) -> None:
        self.directory = directory
        self.processes = processes
        self.port = free_port()
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = self.processes.start(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            env=dict(os.environ), log=self.directory / "redis.log",
        )  # fmt: skip
        wait_for_port(self.port, timeout=10)

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def stop_flushed(self) -> None:
        """``SHUTDOWN NOSAVE``: every queued message is gone; it comes back empty."""
        with contextlib.suppress(Exception):
            self.client().shutdown(nosave=True)
        self.process.popen.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path, processes) -> OwnRedis:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    directory = tmp_path / "redis"
    directory.mkdir()
    redis = OwnRedis(directory, processes)
    redis.start()
    return redis


# --- PostgreSQL of our own --------------------------------------------------------------------


def postgres_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class OwnPostgres:
    """A cluster in a temporary directory, listening on 127.0.0.1:``port`` only."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="mssweb-faults-pg-"))
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:  # PostgreSQL refuses to run as root
            shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def url(self, name: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-w",
                  "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def own_postgres():
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    postgres = OwnPostgres(bindir)
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.remove()


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url``; returns its URL."""
    import psycopg

    parts = urlsplit(server_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(server_url: str, name: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(server_url)._replace(path="/postgres"))
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(admin, autocommit=True) as connection,
    ):
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the peer: a sink that counts ---------------------------------------------------------------

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^<>\s]+)>", re.MULTILINE | re.IGNORECASE)


class Script:
    """Replies of the sink by step (``connect``, ``mail``, ``rcpt`` or ``rcpt:<address>``,
    ``data``): a string answers every time; a list answers once per item, then the sink
    accepts. ``"drop"`` at ``data`` keeps the message and closes the connection unanswered."""

    def __init__(self) -> None:
        self.steps: dict[str, str | list[str]] = {}
        self.lock = threading.Lock()

    def set(self, **steps) -> None:
        with self.lock:
            self.steps = {name.replace("__", ":"): value for name, value in steps.items()}

    def reply(self, step: str) -> str | None:
        with self.lock:
            value = self.steps.get(step)
            if isinstance(value, list):
                return value.pop(0) if value else None
            return value


class SinkHandler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: Counter = Counter()  # (Message-ID, recipient) → copies received
        self.sessions = 0
        self.script = Script()
        self.hold_at: str | None = None  # "connect" or "data": hold the next one there
        self.held = threading.Event()
        self.release = threading.Event()

    def take_hold(self, step: str) -> bool:
        with self.lock:
            if self.hold_at != step:
                return False
            self.hold_at = None
        self.held.set()
        return True

    async def wait_release(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = self.script.reply("mail")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.script.reply(f"rcpt:{address}") or self.script.reply("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        match = _MESSAGE_ID.search(envelope.original_content)
        msgid = match.group(1).decode() if match else ""
        reply = self.script.reply("data")
        if reply and reply != "drop":
            return reply  # refused: not received
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received[(msgid, rcpt)] += 1
        if reply == "drop":
            server.transport.abort()
            return "250 2.0.0 never sent"
        if self.take_hold("data"):
            await self.wait_release()
        return "250 2.0.0 OK queued"


class SinkSMTP(SMTP):
    async def _handle_client(self) -> None:
        handler: SinkHandler = self.event_handler
        with handler.lock:
            handler.sessions += 1
        if handler.take_hold("connect"):  # before the greeting: nothing said yet
            await handler.wait_release()
        reply = handler.script.reply("connect")
        if reply:
            await self.push(reply)
            self.transport.close()
            return
        await super()._handle_client()


class SinkController(Controller):
    def factory(self):
        return SinkSMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class Sink:
    handler: SinkHandler
    controller: Controller
    port: int

    @property
    def received(self) -> Counter:
        with self.handler.lock:
            return Counter(self.handler.received)


@pytest.fixture
def sink(pki):
    """A peer operator's server for PEER_DOMAIN with the peer certificate (PEER_DN)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(*pki.peer)
    handler = SinkHandler()
    port = free_port()
    controller = SinkController(
        handler, hostname="127.0.0.1", port=port, server_hostname="mx.peer.test",
        tls_context=context, require_starttls=True,
    )  # fmt: skip
    controller.start()
    yield Sink(handler=handler, controller=controller, port=port)
    handler.release.set()
    controller.stop(no_assert=True)


# --- a site of our own ----------------------------------------------------------------------------


class Site:
    """An mssweb installation of its own, run by the test in other processes."""

    def __init__(self, directory: Path, processes, *, database_url: str, env: dict) -> None:
        self.directory = directory
        self.processes = processes
        self.database_url = database_url
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.faults.settings",
            "MSSWEB_TESTING": "true",
            "MSSWEB_HTTPS": "false",
            "MSSWEB_VAR_DIR": str(directory / "var"),
            "DATABASE_URL": database_url,
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "filesystem://",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **env,
        }
        self.workers = 0

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=REPO, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        if done.returncode:
            raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def manage(self, *args: str, timeout: float = 120) -> str:
        return self.run("manage.py", *args, timeout=timeout)

    def agent(self, *args: str, timeout: float = 180) -> dict:
        output = self.run("-m", "tests.faults.agent", *args, timeout=timeout)
        return json.loads(output.strip().splitlines()[-1])

    def migrate(self) -> None:
        self.manage("migrate", "--no-input", "-v", "0", timeout=300)

    def worker(self, *, pool: str = "solo", concurrency: int = 1) -> Process:
        """A real Celery worker on the site's broker; returns once it is ready."""
        self.workers += 1
        log = self.directory / f"worker-{self.workers}.log"
        process = self.processes.start(
            [sys.executable, "-m", "celery", "-A", "mssweb", "worker", f"--pool={pool}",
             f"--concurrency={concurrency}", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel=INFO", "-n", f"faults{self.workers}@%h"],
            env=self.env, log=log,
        )  # fmt: skip
        wait_until(
            lambda: "ready." in process.output() or not process.alive, timeout=60, what="worker"
        )
        assert process.alive, process.output()[-3000:]
        return process

    def gateway(self, *, port: int) -> Process:
        process = self.processes.start(
            [sys.executable, "manage.py", "smtp_gateway", "--port", str(port), "--grace", "5"],
            env=self.env, log=self.directory / "gateway.log",
        )  # fmt: skip
        wait_for_port(port, timeout=60)
        return process


@pytest.fixture
def make_site(tmp_path, processes):
    """``make_site(database_url=None, **env)``: a migrated site. Without ``database_url``: a
    SQLite file, or a database of its own on the PostgreSQL server of ``DATABASE_URL`` when the
    suite runs on PostgreSQL (CI)."""
    created: list[tuple[str, str]] = []

    def make(*, database_url: str | None = None, **env: str) -> Site:
        directory = tmp_path / f"site-{len(created)}"
        directory.mkdir()
        if database_url is None:
            server = os.environ.get("DATABASE_URL", "")
            if server.startswith(("postgres://", "postgresql://")):
                name = f"mssweb_faults_{uuid.uuid4().hex[:10]}"
                database_url = create_database(server, name)
                created.append((server, name))
            else:
                database_url = f"sqlite:///{directory / 'site.sqlite3'}"
        site = Site(directory, processes, database_url=database_url, env=env)
        site.migrate()
        return site

    yield make
    for server, name in created:
        drop_database(server, name)


def delivery_env(pki, sink: Sink, **extra: str) -> dict[str, str]:
    """Settings for a site that delivers PEER_DOMAIN to ``sink`` over verified TLS."""
    return {
        "DELIVERY_ROUTES": f"{PEER_DOMAIN}=127.0.0.1:{sink.port}",
        "DELIVERY_RELAY_HOST": "",
        "DELIVERY_CA_BUNDLE": str(pki.ca),
        "DELIVERY_CLIENT_CERT": str(pki.ours[0]),
        "DELIVERY_CLIENT_KEY": str(pki.ours[1]),
        "DELIVERY_EHLO_NAME": "mx.mssweb.test",
        "DELIVERY_SMTP_TIMEOUT": "10",
        "DELIVERY_LEASE_SECONDS": "3",
        **extra,
    }


# --- the invariant, as figures ------------------------------------------------------------------


@dataclass
class Tally:
    fault: str
    accepted: int = 0
    delivered: int = 0
    failed_reported: int = 0
    duplicates: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"FAULT {self.fault}: accepted={self.accepted} delivered={self.delivered} "
            f"failed_with_report={self.failed_reported} duplicates={self.duplicates} "
            f"lost={self.lost}"
        )


def tally(fault: str, state: dict, received: Counter) -> Tally:
    """Check the outbox ``state`` (``agent.outbox_state()``) against what the peer received.

    Lost: a row still open, a row delivered that the peer never saw, a failed row without a
    report in the sender's inbox, a copy at the peer with no row. Duplicates: copies beyond the
    first at the peer, per (Message-ID, recipient)."""
    result = Tally(fault=fault, accepted=len(state["rows"]))
    reported = {(r["msgid"], r["recipient"]) for r in state["reports"] if r["action"] == "failed"}
    keys = set()
    for row in state["rows"]:
        key = (row["msgid"], row["recipient"])
        keys.add(key)
        if row["status"] == "delivered":
            if received[key]:
                result.delivered += 1
            else:
                result.lost += 1
                result.problems.append(f"row {row['id']} delivered but the peer has no copy")
        elif row["status"] == "failed":
            if key in reported:
                result.failed_reported += 1
            else:
                result.lost += 1
                result.problems.append(f"row {row['id']} failed without a report")
        else:
            result.lost += 1
            result.problems.append(f"row {row['id']} still {row['status']}: {row['reason']}")
    for key, copies in received.items():
        if key not in keys:
            result.problems.append(f"the peer received {key} that no row sent")
        result.duplicates += max(0, copies - 1)
    report(result.line())
    return result


def report(line: str) -> None:
    """A fault's one-line figures: printed, and repeated in the terminal summary."""
    SUMMARIES.append(line)
    print(line)


def pytest_terminal_summary(terminalreporter):
    if SUMMARIES:
        terminalreporter.section("fault tests: accepted / delivered / duplicates / lost")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
