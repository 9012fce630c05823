"""The gateway's own SMTP/LMTP protocol (``apps.gateway.smtp``) as a peer's MTA sees it: replies,
their order under PIPELINING, command syntax and sequence, limits, STARTTLS hygiene."""

import socket
import ssl
import time

import pytest

from apps.gateway.models import InboundMessage
from tests.gateway.conftest import LOCAL_DOMAIN, PEER_DOMAIN, message_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("allow_audit_flush")]

SENDER = f"dr.durand@{PEER_DOMAIN}"


class Peer:
    """A plain socket speaking SMTP line by line (what smtplib will not send)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.stream = self.sock.makefile("rb")

    def reply(self) -> list[bytes]:
        """One reply, all its lines."""
        lines = [self.stream.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(self.stream.readline())
        return lines

    def code(self) -> bytes:
        return self.reply()[-1][:9]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


@pytest.fixture
def peer(gateway, mailbox):
    peers: list[Peer] = []

    def open_(**overrides) -> Peer:
        server = gateway(require_tls=False, **overrides)
        connection = Peer(server.port)
        peers.append(connection)
        return connection

    yield open_
    for connection in peers:
        connection.close()


def test_greeting_and_extensions(peer):
    client = peer(max_message_size=40_000)
    assert client.reply() == [b"220 mx.mssweb.test ESMTP mssweb\r\n"]
    client.send(b"EHLO mx.peer.test\r\n")
    lines = [line.rstrip() for line in client.reply()]
    assert lines[0] == b"250-mx.mssweb.test"
    assert {line[4:] for line in lines[1:]} >= {
        b"SIZE 40000", b"8BITMIME", b"PIPELINING", b"ENHANCEDSTATUSCODES", b"STARTTLS"
    }  # fmt: skip
    assert not any(b"AUTH" in line for line in lines)


def test_pipelined_commands_are_answered_in_order_and_the_message_kept(peer, mailbox):
    """RFC 2920: MAIL, RCPT…, DATA in one write (as Postfix sends them), then the data."""
    client = peer()
    client.reply()
    client.send(
        b"EHLO mx.peer.test\r\nMAIL FROM:<%s> SIZE=900 BODY=8BITMIME\r\n"
        b"RCPT TO:<nobody@%s>\r\nRCPT TO:<%s>\r\nDATA\r\n"
        % (SENDER.encode(), LOCAL_DOMAIN.encode(), mailbox.address.encode())
    )
    assert [client.code()[:3] for _ in range(5)] == [b"250", b"250", b"550", b"250", b"354"]
    client.send(message_bytes(to=mailbox.address) + b".\r\nNOOP\r\nQUIT\r\n")
    assert client.code().startswith(b"250 2.0.0")
    assert client.code() == b"250 2.0.0"
    assert client.code() == b"221 2.0.0"
    assert InboundMessage.objects.get().rcpt_tos == [mailbox.address]


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        ([b"MAIL FROM:<%s>" % SENDER.encode()], b"503 5.5.1"),  # before EHLO
        ([b"EHLO"], b"501 5.5.4"),
        ([b"EHLO x", b"RCPT TO:<a@b.test>"], b"503 5.5.1"),  # RCPT before MAIL
        ([b"EHLO x", b"MAIL FROM:<a@b.test>", b"DATA"], b"503 5.5.1"),  # DATA before RCPT
        ([b"EHLO x", b"MAIL FROM:<a@b.test>", b"MAIL FROM:<a@b.test>"], b"503 5.5.1"),  # nested
        ([b"EHLO x", b"MAIL FROM a@b.test"], b"501 5.5.4"),
        ([b"EHLO x", b"MAIL FROM:<a@b.test> SIZE=many"], b"501 5.5.4"),
        ([b"EHLO x", b"MAIL FROM:<a@b.test> RET=HDRS"], b"555 5.5.4"),  # DSN is not offered
        ([b"EHLO x", b"MAIL FROM:<a@b.test>", b"RCPT TO:<>"], b"501 5.5.4"),
        ([b"HELO x", b"MAIL FROM:<a@b.test> SIZE=10"], b"555 5.5.4"),  # no extensions after HELO
        ([b"EHLO x", b"BDAT 10"], b"500 5.5.1"),  # CHUNKING is not offered
        ([b"EHLO x", b"RSET now"], b"501 5.5.4"),
        ([b"EHLO x", b"VRFY someone"], b"252 2.1.5"),
        ([b"EHLO x", b"EXPN list"], b"502 5.5.1"),
        ([b"EHLO x", b"LHLO x"], b"500 5.5.1"),  # LMTP's greeting, not here
        ([b"EHLO x", "MAIL FROM:<médecin@b.test>".encode()], b"500 5.5.2"),  # no SMTPUTF8
        ([b"EHLO x", b"X" * 3000], b"500 5.5.2"),  # command line too long
    ],
)
def test_syntax_and_sequence_errors_are_answered_and_the_session_goes_on(peer, commands, expected):
    client = peer()
    client.reply()
    for command in commands[:-1]:
        client.send(command + b"\r\n")
        client.reply()
    client.send(commands[-1] + b"\r\n")
    assert client.code() == expected
    client.send(b"NOOP\r\n")
    assert client.code() == b"250 2.0.0"


def test_starttls_throws_away_commands_pipelined_before_the_handshake(gateway, pki, mailbox):
    """CVE-2011-0411: what came in clear after STARTTLS must not be taken as sent over TLS."""
    server = gateway()
    client = Peer(server.port)
    client.reply()
    client.send(b"EHLO mx.peer.test\r\n")
    client.reply()
    client.send(b"STARTTLS\r\nMAIL FROM:<%s>\r\n" % SENDER.encode())
    assert client.code() == b"220 2.0.0"
    context = ssl.create_default_context(cafile=str(pki.ca))
    secured = context.wrap_socket(client.sock, server_hostname="localhost")
    stream = secured.makefile("rb")
    secured.sendall(b"RCPT TO:<%s>\r\n" % mailbox.address.encode())
    assert stream.readline()[:9] == b"503 5.5.1"  # no MAIL was taken: the session starts over
    secured.sendall(b"EHLO mx.peer.test\r\n")
    lines = [stream.readline()]
    while lines[-1][3:4] == b"-":
        lines.append(stream.readline())
    assert not any(b"STARTTLS" in line for line in lines)
    secured.sendall(b"STARTTLS\r\n")
    assert stream.readline()[:9] == b"503 5.5.1"  # already using TLS
    stream.close()
    secured.close()


def test_idle_sessions_are_closed(peer):
    client = peer(idle_timeout=1)
    client.reply()
    client.send(b"EHLO mx.peer.test\r\n")
    client.reply()
    time.sleep(1.6)
    assert client.code() == b"421 4.4.2"
    assert client.stream.readline() == b""  # closed


def test_lmtp_refuses_ehlo_and_smtp_refuses_lhlo(gateway, db):
    server = gateway(lmtp=True)
    client = Peer(server.port)
    assert client.reply()[0].startswith(b"220 mx.mssweb.test LMTP")
    client.send(b"EHLO x\r\n")
    assert client.code() == b"500 5.5.1"
    client.send(b"LHLO x\r\n")
    lines = client.reply()
    assert lines[0].startswith(b"250-mx.mssweb.test")
    assert not any(b"STARTTLS" in line for line in lines)
    client.close()
