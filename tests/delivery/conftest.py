"""Real SMTP peers for the delivery tests: aiosmtpd servers on loopback, in threads, with
STARTTLS and the test PKI, and a trust list naming the peer's certificate DN."""

import asyncio
import socket
import ssl
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from apps.trustlist.dn import dn_canonical
from apps.trustlist.models import TrustedEntry, TrustList
from tests.pki import PEER_DN

PEER_DOMAIN = "peer.mssante.test"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    rcpt_options: list[str]


@dataclass
class Behaviour:
    """What the peer does: ``rcpt`` and ``data`` replies (None: accept), or ``"disconnect"``
    after the data (no reply) or ``"stall"`` (sleep beyond the client's timeout)."""

    rcpt: dict[str, str] = field(default_factory=dict)
    data: str | None = None
    dsn: bool = False
    stall_seconds: float = 4.0


class Handler:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.received: list[Received] = []
        self.tls_seen: list[bool] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.behaviour.dsn:
            responses.insert(-1, "250-DSN")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.behaviour.rcpt.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.tls_seen.append(session.ssl is not None)
        data = self.behaviour.data
        if data == "stall":
            await asyncio.sleep(self.behaviour.stall_seconds)
        if data == "disconnect":
            self._store(envelope)
            server.transport.abort()
            return "250 2.0.0 never sent"
        if data:
            return data
        self._store(envelope)
        return "250 2.0.0 OK queued"

    def _store(self, envelope) -> None:
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=envelope.original_content,
                mail_options=list(envelope.mail_options),
                rcpt_options=list(envelope.rcpt_options),
            )
        )


class DsnSMTP(SMTP):
    """aiosmtpd refuses parameters it does not implement; this peer takes the DSN ones."""

    def _getparams(self, params):
        result = super()._getparams(params)
        if result is not None:
            for name in ("RET", "ENVID", "NOTIFY", "ORCPT"):
                result.pop(name, None)
        return result


class PeerController(Controller):
    def factory(self):
        return DsnSMTP(self.handler, **self.SMTP_kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_context(cert_key) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(*cert_key)
    return context


@dataclass
class Peer:
    handler: Handler
    port: int
    controller: Controller

    @property
    def received(self) -> list[Received]:
        return self.handler.received


@pytest.fixture
def trusted_peer(db):
    """The trust list in service names PEER_DN for PEER_DOMAIN."""
    trust_list = TrustList.objects.create(status=TrustList.Status.ACTIVE, entry_count=1)
    return TrustedEntry.objects.create(
        trust_list=trust_list, domain=PEER_DOMAIN, dn=PEER_DN, dn_canonical=dn_canonical(PEER_DN)
    )


@pytest.fixture
def start_peer(pki, settings, trusted_peer):
    """``start_peer(behaviour, cert=pki.peer, tls=True)`` → a running peer that DELIVERY_ROUTES
    points PEER_DOMAIN at; our side presents ``pki.ours`` and trusts ``pki.ca``."""
    started: list[Controller] = []
    settings.DELIVERY_CA_BUNDLE = str(pki.ca)
    settings.DELIVERY_CLIENT_CERT = str(pki.ours[0])
    settings.DELIVERY_CLIENT_KEY = str(pki.ours[1])
    settings.DELIVERY_SMTP_TIMEOUT = 1.5
    settings.DELIVERY_RELAY_HOST = ""
    settings.DELIVERY_EHLO_NAME = "mx.mssweb.test"

    def start(behaviour: Behaviour | None = None, *, cert=None, tls: bool = True) -> Peer:
        handler = Handler(behaviour or Behaviour())
        port = free_port()
        kwargs = {"tls_context": server_context(cert or pki.peer)} if tls else {}
        controller = PeerController(
            handler, hostname="127.0.0.1", port=port, server_hostname="mx.peer.test", **kwargs
        )
        controller.start()
        started.append(controller)
        settings.DELIVERY_ROUTES = f"{PEER_DOMAIN}=127.0.0.1:{port}"
        return Peer(handler=handler, port=port, controller=controller)

    yield start
    for controller in started:
        controller.stop(no_assert=True)
