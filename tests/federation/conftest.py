"""A second, real mssweb operator for the federation tests.

Operator A is the test process (pytest-django's database, its gateway in a thread). Operator B
is this checkout run again as subprocesses with an environment of its own: a SQLite file in a
temporary folder, its own var folder, media and storage key, its own domain, its gateway
(``manage.py smtp_gateway``) presenting the peer certificate of the test PKI and asking for
client certificates, and Celery eager, so that its gateway files mail before answering ``250``
and its sends are delivered before ``message_send`` returns. Actions on B are small scripts run
with ``manage.py shell -c``; they hand their findings back as one JSON line.
"""

import base64
import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.gateway.conftest import gateway  # noqa: F401 - operator A's gateway
from tests.pki import OUR_DN, PEER_DN

BASE_DIR = Path(__file__).resolve().parents[2]
OUR_DOMAIN = "ours.mssweb.test"
PEER_DOMAIN = "peer.mssweb.test"
RESULT_MARK = "@@result@@ "
# Settings of the test process that must not leak into operator B's environment.
_NOT_INHERITED = (
    "DATABASE_", "REDIS_", "CELERY_", "DJANGO_", "MSSWEB_", "DELIVERY_", "GATEWAY_",
    "TRUSTLIST_", "MAILBOX_", "EMAIL_",
)  # fmt: skip


def trust_list_xml() -> bytes:
    """The national list as both operators see it: each domain with its operator's DN."""
    entries = "".join(
        f"<Domaine><Nom>{name}</Nom><Description>{label}</Description>"
        f"<DNCertificatOperateur>{dn}</DNCertificatOperateur>"
        "<ResponsableContact>01 02 03 04 05, r@example.org</ResponsableContact>"
        "<SupportContact>01 02 03 04 05, s@example.org</SupportContact>"
        "<DateMAJ>2026-01-02T03:04:05Z</DateMAJ></Domaine>"
        for name, label, dn in (
            (OUR_DOMAIN, "mssweb test operator", OUR_DN),
            (PEER_DOMAIN, "Peer test operator", PEER_DN),
        )
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">'
        f"<DateDeGeneration>2026-01-05T09:00:00Z</DateDeGeneration>"
        f"<ListeDomaines>{entries}</ListeDomaines></ListeBlancheMSSante>"
    ).encode()


class PeerFailure(AssertionError):
    pass


@dataclass
class PeerOperator:
    """Operator B: ``manage(...)`` runs a command, ``shell(code, **args)`` a script (which
    sets ``result``), ``start_gateway()`` its SMTP gateway (stopped by the fixture)."""

    directory: Path
    env: dict[str, str]
    gateway_port: int = 0
    processes: list[subprocess.Popen] = field(default_factory=list)

    def manage(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        try:
            done = subprocess.run(
                [sys.executable, "manage.py", *args],
                cwd=BASE_DIR, env=self.env, input=stdin, capture_output=True, text=True,
                timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise PeerFailure(
                f"operator B: manage.py {args[0]} still running after {timeout} s\n"
                f"{_text(exc.stderr)[-4000:]}"
            ) from exc
        if done.returncode != 0:
            raise PeerFailure(
                f"operator B: manage.py {args[0]} exited with {done.returncode}\n"
                f"--- stderr ---\n{done.stderr[-6000:]}\n--- stdout ---\n{done.stdout[-2000:]}"
            )
        return done.stdout

    def shell(self, code: str, **args) -> dict:
        """Run ``code`` in B's Django (``args`` given to it as the dict ``args``); returns the
        ``result`` it set."""
        script = (
            "import json\n"
            f"args = json.loads({json.dumps(json.dumps(args))})\n"
            f"{textwrap.dedent(code)}\n"
            f"print({RESULT_MARK!r} + json.dumps(result, default=str))\n"
        )
        out = self.manage("shell", "--no-startup", "-c", script)
        for line in reversed(out.splitlines()):
            if line.startswith(RESULT_MARK):
                return json.loads(line[len(RESULT_MARK) :])
        raise PeerFailure(f"operator B: the script printed no result\n{out[-2000:]}")

    def start_gateway(self, *, timeout: float = 30) -> int:
        stderr_path = self.directory / "gateway.stderr"
        process = subprocess.Popen(
            [sys.executable, "manage.py", "smtp_gateway", "--host", "127.0.0.1", "--port", "0",
             "--grace", "5"],
            cwd=BASE_DIR, env=self.env, stdout=subprocess.PIPE,
            stderr=stderr_path.open("wb"), text=True,
        )  # fmt: skip
        self.processes.append(process)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(line) for line in process.stdout], daemon=True
        ).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if process.poll() is not None:
                    break
                continue
            if line.startswith("smtp_gateway: SMTP on "):
                self.gateway_port = int(line.rsplit(":", 1)[1])
                _wait_for_port(self.gateway_port, deadline=deadline)
                return self.gateway_port
        raise PeerFailure(
            f"operator B's gateway did not start (exit code {process.poll()})\n"
            f"{stderr_path.read_text(errors='replace')[-6000:]}"
        )

    def gateway_stderr(self) -> str:
        path = self.directory / "gateway.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()  # the command stops on SIGTERM
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


def _wait_for_port(port: int, *, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def peer_operator(tmp_path, pki):
    """``peer_operator(a_gateway_port)`` → operator B, migrated, with the trust list imported
    and its gateway running; everything it started is stopped at the end of the test."""
    started: list[PeerOperator] = []

    def start(our_gateway_port: int) -> PeerOperator:
        directory = tmp_path / "operator-b"
        (directory / "media").mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
        env.update(
            DJANGO_SETTINGS_MODULE="mssweb.settings_test",
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
            MSSWEB_VAR_DIR=str(directory),
            MSSWEB_MEDIA_ROOT=str(directory / "media"),
            MSSWEB_STORAGE_KEYS="peer:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            MSSWEB_LOG_LEVEL="WARNING",
            DATABASE_URL=f"sqlite:///{directory / 'b.sqlite3'}",
            CELERY_TASK_ALWAYS_EAGER="true",
            GATEWAY_HOSTNAME="mx.peer.test",
            GATEWAY_TLS_CERT=str(pki.peer[0]),
            GATEWAY_TLS_KEY=str(pki.peer[1]),
            GATEWAY_REQUIRE_TLS="true",
            GATEWAY_CLIENT_CA_BUNDLE=str(pki.ca),
            GATEWAY_REQUIRE_CLIENT_CERT="true",
            GATEWAY_DB_THREADS="2",
            DELIVERY_ROUTES=f"{OUR_DOMAIN}=127.0.0.1:{our_gateway_port}",
            DELIVERY_CA_BUNDLE=str(pki.ca),
            DELIVERY_CLIENT_CERT=str(pki.peer[0]),
            DELIVERY_CLIENT_KEY=str(pki.peer[1]),
            DELIVERY_EHLO_NAME="mx.peer.test",
            DELIVERY_SMTP_TIMEOUT="10",
        )
        operator = PeerOperator(directory=directory, env=env)
        started.append(operator)
        trust_list = directory / "listeblanchemssante.xml"
        trust_list.write_bytes(trust_list_xml())
        operator.manage("migrate", "--no-input", "-v", "0")
        operator.manage("import_trustlist", str(trust_list))
        operator.start_gateway()
        return operator

    yield start
    for operator in started:
        operator.stop()
