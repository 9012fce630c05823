"""The gateway's chunked DATA reader (``apps.gateway.smtp``) reads the data as RFC 5321 says:
end of data only on <CRLF>.<CRLF>, one leading dot removed per line, 500 for a line over 1001
octets, 552 over the size limit; and concurrent messages committed together are all kept."""

import socket
import threading

import pytest
from django.conf import settings as django_settings

from apps.gateway.models import InboundMessage
from apps.gateway.server import smuggling_suspected
from apps.gateway.smtp import longest_line
from tests.gateway.conftest import LOCAL_DOMAIN, connect, make_mailbox

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("allow_audit_flush")]


def _send_raw(server, body: bytes, *, rcpt: str) -> tuple[bytes, bytes]:
    """Plain socket conversation: returns (reply to DATA's end, reply to the next NOOP)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"EHLO mx.peer.test\r\n")
        while reader.readline()[3:4] == b"-":
            pass
        for command in (b"MAIL FROM:<a@peer.mssante.test>", b"RCPT TO:<%s>" % rcpt.encode(),
                        b"DATA"):  # fmt: skip
            sock.sendall(command + b"\r\n")
            reader.readline()
        # Sent in small pieces so that the separator straddles reads.
        payload = body + b".\r\nNOOP\r\n"
        for start in range(0, len(payload), 7):
            sock.sendall(payload[start : start + 7])
        return reader.readline(), reader.readline()


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        (b"Subject: a\r\n\r\nMerci.\r\nFin.\r\n", b"Subject: a\r\n\r\nMerci.\r\nFin.\r\n"),
        (b"Subject: a\r\n\r\n..\r\n.5 mg\r\n", b"Subject: a\r\n\r\n.\r\n5 mg\r\n"),
        (b".Subject: a\r\n\r\nx\r\n", b"Subject: a\r\n\r\nx\r\n"),
        (
            b"Subject: a\r\n\r\n" + b"x" * 999 + b"\r\n",
            b"Subject: a\r\n\r\n" + b"x" * 999 + b"\r\n",
        ),
    ],
)
def test_data_is_read_as_rfc_5321_says(gateway, body, stored):
    make_mailbox("secretariat")
    server = gateway(require_tls=False)
    reply, after = _send_raw(server, body, rcpt=f"secretariat@{LOCAL_DOMAIN}")
    assert reply.startswith(b"250 2.0.0"), reply
    assert after.startswith(b"250"), after  # the pipelined command after the dot was kept
    assert InboundMessage.objects.get().size == len(stored)


def test_line_too_long_and_too_much_data_are_refused_after_the_data(gateway):
    make_mailbox("secretariat")
    server = gateway(require_tls=False, max_message_size=5000)
    long_line = b"Subject: a\r\n\r\n" + b"x" * 1000 + b"\r\n"
    reply, after = _send_raw(server, long_line, rcpt=f"secretariat@{LOCAL_DOMAIN}")
    assert reply.startswith(b"500 5.5.2"), reply
    assert after.startswith(b"250")
    too_much = b"Subject: a\r\n\r\n" + b"y" * 70 + b"\r\n" * 100 + b"z" * 80 + b"\r\n"
    reply, _after = _send_raw(server, too_much * 20, rcpt=f"secretariat@{LOCAL_DOMAIN}")
    assert reply.startswith(b"552 5.3.4"), reply
    assert not InboundMessage.objects.exists()


@pytest.mark.skipif(
    "sqlite" in django_settings.DATABASES["default"]["ENGINE"],
    reason="the in-memory test SQLite fails concurrent writers at once; PostgreSQL queues them",
)
def test_concurrent_messages_are_each_committed_once(gateway, pki):
    make_mailbox("secretariat")
    server = gateway()
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            client = connect(server, pki)
            for i in range(5):
                message = (
                    f"Subject: {n}-{i}\r\nMessage-ID: <{n}.{i}@peer.mssante.test>\r\n\r\nCorps\r\n"
                )
                client.sendmail("a@peer.mssante.test", [f"secretariat@{LOCAL_DOMAIN}"], message)
            client.quit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    ids = sorted(InboundMessage.objects.values_list("message_id", flat=True))
    assert ids == sorted(f"{n}.{i}@peer.mssante.test" for n in range(6) for i in range(5))


def test_helpers():
    assert longest_line(b"ab\r\ncdef\r\n") == 6
    assert longest_line(b"") == 2
    assert not smuggling_suspected(b"a\r\n.\r\nb\r\n")
    assert smuggling_suspected(b"a\r\n.\nb\r\n")
