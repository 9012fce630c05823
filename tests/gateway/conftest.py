"""The gateway under test: the real server in a thread on an ephemeral loopback port,
configured through the real settings, talked to with ``smtplib``; the test PKI for TLS."""

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from apps.accounts.models import Domain
from apps.gateway.server import GatewayOptions, GatewayServer
from apps.mailbox.models import Mailbox, MailboxKind
from apps.trustlist.dn import dn_canonical
from apps.trustlist.models import TrustedEntry, TrustList
from tests.pki import PEER_DN

LOCAL_DOMAIN = "gateway.mssante.test"
PEER_DOMAIN = "peer.mssante.test"


@pytest.fixture
def mailbox(db):
    return make_mailbox("secretariat")


def make_mailbox(local_part: str) -> Mailbox:
    domain = Domain.objects.get_or_create(name=LOCAL_DOMAIN)[0]
    return Mailbox.objects.create(
        address=f"{local_part}@{LOCAL_DOMAIN}",
        kind=MailboxKind.ORGANISATIONAL,
        domain=domain,
        display_name=local_part.title(),
    )


@pytest.fixture
def trusted_peer(db):
    """The trust list in service gives PEER_DN for PEER_DOMAIN."""
    trust_list = TrustList.objects.create(status=TrustList.Status.ACTIVE, entry_count=1)
    return TrustedEntry.objects.create(
        trust_list=trust_list, domain=PEER_DOMAIN, dn=PEER_DN, dn_canonical=dn_canonical(PEER_DN)
    )


@pytest.fixture
def gateway(settings, pki):
    """``gateway(**settings_overrides)`` starts a gateway with TLS (our certificate) and
    returns the running ``GatewayServer``; stopped at the end of the test."""
    servers: list[GatewayServer] = []

    def start(*, lmtp: bool = False, **overrides) -> GatewayServer:
        settings.GATEWAY_HOSTNAME = "mx.mssweb.test"
        settings.GATEWAY_TLS_CERT, settings.GATEWAY_TLS_KEY = map(str, pki.ours)
        settings.GATEWAY_REQUIRE_TLS = True
        settings.GATEWAY_CLIENT_CA_BUNDLE = ""
        settings.GATEWAY_REQUIRE_CLIENT_CERT = False
        settings.GATEWAY_DB_THREADS = 2
        for name, value in overrides.items():
            setattr(settings, f"GATEWAY_{name.upper()}", value)
        server = GatewayServer(GatewayOptions.from_settings(lmtp=lmtp), host="127.0.0.1", port=0)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop(grace=5)


def client_context(pki, *, cert=None, **versions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    for name, value in versions.items():
        setattr(context, name, value)
    if cert is not None:
        context.load_cert_chain(*map(str, cert))
    return context


def connect(server: GatewayServer, pki=None, *, tls: bool = True, cert=None, **versions):
    """An smtplib client, after EHLO (and STARTTLS with the test CA, and EHLO again)."""
    client = smtplib.SMTP("127.0.0.1", server.port, local_hostname="mx.peer.test", timeout=10)
    client.ehlo()
    if tls:
        client.starttls(context=client_context(pki, cert=cert, **versions))
        client.ehlo()
    return client


def message_bytes(
    *, to: str, sender: str = f"dr.durand@{PEER_DOMAIN}", subject: str = "Compte rendu",
    body: str = "Bonjour,\nVoici le compte rendu.\n", message_id: str | None = None,
) -> bytes:  # fmt: skip
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain=PEER_DOMAIN)
    message["Date"] = "Sat, 28 Nov 2026 10:00:00 +0100"
    message.set_content(body)
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
