"""A peer operator delivering to our gateway over real SMTP/LMTP and TLS on loopback."""

import re
import smtplib
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings as django_settings

from apps.attachments.models import StoredBlob
from apps.attachments.services import blob_bytes
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.gateway import server as gateway_server
from apps.gateway.models import DeliveryOutcome, InboundDelivery, InboundMessage, InboundStatus
from apps.gateway.server import smuggling_suspected
from apps.mailbox.models import FolderKind, Message
from apps.trustlist.dn import dn_canonical
from tests.gateway.conftest import (
    LOCAL_DOMAIN,
    PEER_DOMAIN,
    connect,
    make_mailbox,
    message_bytes,
)
from tests.pki import PEER_DN

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("allow_audit_flush")]

SENDER = f"dr.durand@{PEER_DOMAIN}"


def send(client, *, to: list[str], raw: bytes, sender: str = SENDER, options=()):
    """MAIL, RCPT…, DATA step by step; returns the reply to DATA (code, text)."""
    code, text = client.mail(sender, list(options))
    assert code == 250, text
    for address in to:
        code, text = client.rcpt(address)
        assert code == 250, text
    return client.data(raw)


def queued_id(reply: bytes) -> int:
    return int(re.search(rb"queued as (\d+)", reply).group(1))


# --- Accepting and filing -----------------------------------------------------------------------


def test_accepted_message_is_committed_then_filed_in_the_inbox(gateway, pki, mailbox):
    server = gateway()
    raw = message_bytes(to=mailbox.address, subject="Compte rendu opératoire")
    with connect(server, pki) as client:
        code, reply = send(client, to=[mailbox.address.upper()], raw=raw)
    assert code == 250
    assert reply.startswith(b"2.0.0 OK")
    inbound = InboundMessage.objects.get(pk=queued_id(reply))
    # The row the 250 names holds the bytes received, encrypted, and the envelope.
    assert blob_bytes(inbound.raw) == raw
    assert inbound.size == len(raw)
    assert inbound.rcpt_tos == [mailbox.address]
    assert inbound.mail_from == SENDER
    assert inbound.helo == "mx.peer.test"
    assert inbound.peer_ip == "127.0.0.1"
    assert inbound.tls_version == "TLSv1.3"
    assert inbound.message_id.endswith(f"@{PEER_DOMAIN}")
    assert inbound.status == InboundStatus.INGESTED
    assert inbound.ingested_at is not None
    message = Message.objects.get(mailbox=mailbox)
    assert message.folder.kind == FolderKind.INBOX
    assert message.subject == "Compte rendu opératoire"
    assert message.message_id == inbound.message_id
    filed = blob_bytes(message.raw)
    assert filed.startswith(b"Received: from mx.peer.test ([127.0.0.1])")
    assert b"by mx.mssweb.test (mssweb) with ESMTPS id" in filed
    assert filed.endswith(raw)
    delivery = InboundDelivery.objects.get(inbound=inbound)
    assert (delivery.mailbox, delivery.message, delivery.outcome) == (
        mailbox,
        message,
        DeliveryOutcome.FILED,
    )
    events = AuditEvent.objects.filter(
        target_type="gateway.inboundmessage", target_id=inbound.pk
    ).order_by("id")
    assert list(events.values_list("event", flat=True)) == [
        Event.INBOUND_ACCEPTED, Event.INBOUND_INGESTED
    ]  # fmt: skip


def test_ehlo_advertises_size_8bitmime_starttls_and_no_auth(gateway, pki, mailbox, settings):
    server = gateway(max_message_size=123_456)
    client = connect(server, pki, tls=False)
    assert client.has_extn("starttls")
    assert client.has_extn("8bitmime")
    assert client.esmtp_features["size"] == "123456"
    client.starttls(context=ssl.create_default_context(cafile=str(pki.ca)))
    client.ehlo()
    assert not client.has_extn("starttls")
    assert not client.has_extn("auth")
    client.quit()


def test_default_size_leaves_room_for_the_mime_encoding(settings):
    assert int(settings.MAILBOX_MAX_MESSAGE_SIZE * 1.4) == settings.GATEWAY_MAX_MESSAGE_SIZE


def test_unknown_recipient_is_refused_and_the_others_get_the_message(gateway, pki, mailbox):
    server = gateway()
    with connect(server, pki) as client:
        client.mail(SENDER)
        assert client.rcpt(f"nobody@{LOCAL_DOMAIN}") == (550, b"5.1.1 No such mailbox here")
        assert client.rcpt(f"someone@{PEER_DOMAIN}")[0] == 550
        assert client.rcpt(mailbox.address)[0] == 250
        code, _reply = client.data(message_bytes(to=mailbox.address))
    assert code == 250
    assert InboundMessage.objects.get().rcpt_tos == [mailbox.address]
    assert Message.objects.filter(mailbox=mailbox).count() == 1


def test_full_mailbox_is_refused_temporarily(gateway, pki, mailbox):
    mailbox.quota_bytes = 1000
    mailbox.used_bytes = 1000
    mailbox.save()
    server = gateway()
    with connect(server, pki) as client:
        client.mail(SENDER)
        assert client.rcpt(mailbox.address) == (452, b"4.2.2 Mailbox full")


def test_too_many_recipients_is_refused_with_452(gateway, pki, db):
    boxes = [make_mailbox(f"service{n}") for n in range(3)]
    server = gateway(max_recipients=2)
    with connect(server, pki) as client:
        client.mail(SENDER)
        assert client.rcpt(boxes[0].address)[0] == 250
        assert client.rcpt(boxes[1].address)[0] == 250
        assert client.rcpt(boxes[2].address) == (452, b"4.5.3 Too many recipients")
        code, _reply = client.data(message_bytes(to=boxes[0].address))
    assert code == 250
    assert InboundMessage.objects.get().rcpt_tos == [boxes[0].address, boxes[1].address]


def test_oversize_is_refused_at_mail_size_and_at_end_of_data(gateway, pki, mailbox):
    server = gateway(max_message_size=2000)
    with connect(server, pki) as client:
        code, text = client.mail(SENDER, ["SIZE=5000"])
        assert (code, text[:5]) == (552, b"5.3.4")
        client.rset()
        code, text = send(
            client, to=[mailbox.address], raw=message_bytes(to=mailbox.address, body="x" * 3000)
        )
        assert (code, text[:5]) == (552, b"5.3.4")
        # The session goes on: a message within the limit is taken.
        code, _text = send(client, to=[mailbox.address], raw=message_bytes(to=mailbox.address))
        assert code == 250
    assert InboundMessage.objects.count() == 1


def test_lines_longer_than_rfc_5321_allows_are_refused(gateway, pki, mailbox):
    server = gateway()
    raw = message_bytes(to=mailbox.address) + b"y" * 1200 + b"\r\n"
    with connect(server, pki) as client:
        code, text = send(client, to=[mailbox.address], raw=raw)
    assert (code, text[:5]) == (500, b"5.5.2")
    assert not InboundMessage.objects.exists()


def test_null_sender_reports_are_accepted(gateway, pki, mailbox):
    server = gateway()
    with connect(server, pki) as client:
        code, _reply = send(
            client, to=[mailbox.address], raw=message_bytes(to=mailbox.address), sender="<>"
        )
    assert code == 250
    assert InboundMessage.objects.get().mail_from == ""


# --- TLS ----------------------------------------------------------------------------------------


def test_mail_before_starttls_is_refused_when_tls_is_required(gateway, pki, mailbox):
    server = gateway()
    with connect(server, pki, tls=False) as client:
        code, text = client.mail(SENDER)
    assert (code, text[:5]) == (530, b"5.7.0")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_1_2_is_accepted_and_tls_1_1_refused(gateway, pki, mailbox):
    server = gateway()
    with connect(server, pki, maximum_version=ssl.TLSVersion.TLSv1_2) as client:
        code, _reply = send(client, to=[mailbox.address], raw=message_bytes(to=mailbox.address))
    assert code == 250
    assert InboundMessage.objects.get().tls_version == "TLSv1.2"
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cafile=str(pki.ca))
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # this client would speak TLS 1.1: the server won't
    client = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    client.ehlo()
    with pytest.raises(ssl.SSLError):
        client.starttls(context=old)
    client.close()


# --- Mutual TLS and the trust list ---------------------------------------------------------------


@pytest.fixture
def mutual_tls_gateway(gateway, pki, trusted_peer):
    return gateway(client_ca_bundle=str(pki.ca), require_client_cert=True)


def test_peer_certificate_listed_for_the_sender_domain_is_accepted(
    mutual_tls_gateway, pki, mailbox
):
    with connect(mutual_tls_gateway, pki, cert=pki.peer) as client:
        code, _reply = send(client, to=[mailbox.address], raw=message_bytes(to=mailbox.address))
    assert code == 250
    assert InboundMessage.objects.get().client_cert_dn == dn_canonical(PEER_DN)


def rejected_reasons() -> list[str]:
    return [e.detail["reason"] for e in AuditEvent.objects.filter(event=Event.INBOUND_REJECTED)]


def test_listed_certificate_cannot_send_for_another_domain(mutual_tls_gateway, pki, mailbox):
    with connect(mutual_tls_gateway, pki, cert=pki.peer) as client:
        code, text = client.mail("someone@other-operator.mssante.test")
    assert (code, text[:5]) == (550, b"5.7.1")
    assert rejected_reasons() == ["certificate_not_listed"]


def test_rogue_certificate_from_the_same_ca_is_refused(mutual_tls_gateway, pki, mailbox):
    with connect(mutual_tls_gateway, pki, cert=pki.rogue) as client:
        code, text = client.mail(SENDER)
    assert (code, text[:5]) == (550, b"5.7.1")
    assert rejected_reasons() == ["certificate_not_listed"]
    assert not InboundMessage.objects.exists()


def test_no_client_certificate_is_refused_when_required(mutual_tls_gateway, pki, mailbox):
    with connect(mutual_tls_gateway, pki) as client:
        code, text = client.mail(SENDER)
    assert (code, text) == (550, b"5.7.1 A client certificate is required")


def test_certificate_from_an_untrusted_ca_fails_the_handshake(mutual_tls_gateway, pki, mailbox):
    # TLS 1.3 clients learn of the refusal on their first read after the handshake.
    refused = (ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)
    with pytest.raises(refused), connect(mutual_tls_gateway, pki, cert=pki.stranger) as client:
        client.mail(SENDER)
    assert not InboundMessage.objects.exists()


def test_null_sender_is_checked_against_the_from_domain(mutual_tls_gateway, pki, mailbox):
    with connect(mutual_tls_gateway, pki, cert=pki.peer) as client:
        listed = message_bytes(to=mailbox.address, sender=f"mailer-daemon@{PEER_DOMAIN}")
        assert send(client, to=[mailbox.address], raw=listed, sender="<>")[0] == 250
        other = message_bytes(to=mailbox.address, sender="mailer-daemon@elsewhere.test")
        code, text = send(client, to=[mailbox.address], raw=other, sender="<>")
    assert (code, text[:5]) == (550, b"5.7.1")
    assert InboundMessage.objects.count() == 1


def test_large_message_is_encrypted_in_a_worker_thread(gateway, pki, mailbox, monkeypatch):
    """Raws above ``ENCRYPT_ON_LOOP_MAX`` leave the event loop to be encrypted; the rest of
    the path is the same."""
    monkeypatch.setattr(gateway_server, "ENCRYPT_ON_LOOP_MAX", 1000)
    encrypting_threads = set()
    prepare = gateway_server.services.inbound_prepare

    def spying(*, raw, envelope):
        encrypting_threads.add(threading.current_thread().name)
        return prepare(raw=raw, envelope=envelope)

    monkeypatch.setattr(gateway_server.services, "inbound_prepare", spying)
    server = gateway()
    small = message_bytes(to=mailbox.address)
    large = message_bytes(to=mailbox.address, body="Compte rendu détaillé.\n" * 100)
    assert len(small) <= 1000 < len(large)
    with connect(server, pki) as client:
        assert send(client, to=[mailbox.address], raw=small)[0] == 250
        code, reply = send(client, to=[mailbox.address], raw=large)
    assert code == 250
    assert blob_bytes(InboundMessage.objects.get(pk=queued_id(reply)).raw) == large
    assert {name.split("_")[0] for name in encrypting_threads} == {"gateway-loop", "gateway-db"}


# --- Failures and attacks -----------------------------------------------------------------------


@pytest.mark.parametrize("on_loop", [True, False], ids=["encrypted-on-loop", "encrypted-in-thread"])
def test_storage_failure_answers_451_and_keeps_nothing(
    gateway, pki, mailbox, settings, monkeypatch, on_loop
):
    settings.STORAGE_ACTIVE_KEY = "retired"  # no such master key: the raw cannot be encrypted
    if not on_loop:
        monkeypatch.setattr(gateway_server, "ENCRYPT_ON_LOOP_MAX", 0)
    server = gateway()
    with connect(server, pki) as client:
        code, text = send(client, to=[mailbox.address], raw=message_bytes(to=mailbox.address))
    assert (code, text) == (451, b"4.3.0 Temporary local problem, please try again later")
    assert not InboundMessage.objects.exists()
    assert not StoredBlob.objects.exists()
    assert not Message.objects.exists()


def raw_session(port: int, commands: list[bytes]) -> list[bytes]:
    """Plain-text SMTP, for what smtplib will not send (TLS not required on this server)."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rb")
        replies.append(stream.readline())
        for command in commands:
            sock.sendall(command)
            line = stream.readline()
            while line[3:4] == b"-":
                line = stream.readline()
            replies.append(line)
    return replies


@pytest.mark.parametrize(
    "trick",
    [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n"],
    ids=["LF.LF", "CRLF.LF", "LF.CRLF", "CR.CR", "CRLF.CR", "CR.CRLF"],
)
def test_smtp_smuggling_is_refused(gateway, mailbox, trick):
    server = gateway(require_tls=False)
    smuggled = (
        b"Subject: hello\r\n\r\nfirst" + trick + b"MAIL FROM:<ceo@" + PEER_DOMAIN.encode()
        + b">\r\nRCPT TO:<" + mailbox.address.encode() + b">\r\nDATA\r\nSubject: forged\r\n\r\n"
        b"forged\r\n.\r\n"
    )  # fmt: skip
    replies = raw_session(
        server.port,
        [
            b"EHLO mx.peer.test\r\n",
            f"MAIL FROM:<{SENDER}>\r\n".encode(),
            f"RCPT TO:<{mailbox.address}>\r\n".encode(),
            b"DATA\r\n",
            smuggled,
            b"QUIT\r\n",
        ],
    )
    assert replies[4].startswith(b"354")
    assert replies[5].startswith(b"550 5.5.2")
    assert not InboundMessage.objects.exists()
    assert rejected_reasons() == ["smtp_smuggling"]


def test_smuggling_check_lets_ordinary_messages_through():
    assert not smuggling_suspected(b"Subject: a\r\n\r\nline\r\n.\r\nmore\r\n")  # a stuffed dot
    assert not smuggling_suspected(b"Subject: a\r\n\r\n\r\n\r\nend\r\n")
    assert not smuggling_suspected(b"a.b\r\n.5 mg\r\n")
    assert smuggling_suspected(b"a\n.\nb\r\n")
    assert smuggling_suspected(b"\n.\r\n")


def test_connections_beyond_the_limit_are_told_to_come_back(gateway, pki, mailbox):
    server = gateway(max_connections=1)
    with connect(server, pki):
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        assert refused.value.smtp_code == 421
    time.sleep(0.2)
    with connect(server, pki) as client:
        assert client.noop()[0] == 250


def test_session_time_is_limited(gateway, pki, mailbox):
    server = gateway(session_timeout=1)
    client = connect(server, pki)
    time.sleep(1.5)
    # The gateway said why before closing; the client reads it with its next reply.
    assert client.mail(SENDER) == (421, b"4.4.2 Session time limit exceeded")
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        client.rcpt(mailbox.address)


def test_commands_per_session_are_limited(gateway, pki, mailbox):
    server = gateway(max_commands=3)
    with connect(server, pki) as client:
        for _ in range(3):
            assert client.noop()[0] == 250
        assert client.noop()[0] == 421


# --- Duplicates ---------------------------------------------------------------------------------


def test_a_message_sent_twice_is_filed_once(gateway, pki, mailbox):
    server = gateway()
    raw = message_bytes(to=mailbox.address)
    for _attempt in range(2):  # the peer never saw our first 250 and sends again
        with connect(server, pki) as client:
            assert send(client, to=[mailbox.address], raw=raw)[0] == 250
    assert InboundMessage.objects.count() == 2
    assert Message.objects.filter(mailbox=mailbox).count() == 1
    outcomes = sorted(InboundDelivery.objects.values_list("outcome", flat=True))
    assert outcomes == [DeliveryOutcome.DUPLICATE, DeliveryOutcome.FILED]
    assert set(InboundMessage.objects.values_list("status", flat=True)) == {InboundStatus.INGESTED}


# --- LMTP ---------------------------------------------------------------------------------------


def test_lmtp_answers_once_per_recipient_after_data(gateway, db):
    boxes = [make_mailbox("cardio"), make_mailbox("radio")]
    server = gateway(lmtp=True)
    client = smtplib.LMTP("127.0.0.1", server.port, timeout=10)
    assert client.ehlo_or_helo_if_needed() is None
    assert client.mail(SENDER)[0] == 250
    for box in boxes:
        assert client.rcpt(box.address)[0] == 250
    assert client.rcpt(f"nobody@{LOCAL_DOMAIN}")[0] == 550
    client.putcmd("data")
    assert client.getreply()[0] == 354
    client.send(message_bytes(to=boxes[0].address) + b".\r\n")
    replies = [client.getreply() for _box in boxes]
    client.quit()
    assert [code for code, _text in replies] == [250, 250]
    inbound = InboundMessage.objects.get()
    assert inbound.protocol == "lmtp"
    assert {m.mailbox_id for m in Message.objects.all()} == {b.pk for b in boxes}


# --- Under load ---------------------------------------------------------------------------------


@pytest.mark.skipif(
    "sqlite" in django_settings.DATABASES["default"]["ENGINE"],
    reason="the in-memory test SQLite fails concurrent writers at once (shared cache, no busy "
    "wait); a real SQLite file in WAL mode and PostgreSQL queue them",
)
def test_concurrent_senders_each_message_filed_exactly_once(gateway, pki, mailbox):
    """10 peers at once, 5 messages each; a 451 is retried as a real peer would. Every message
    the gateway accepted is in the mailbox once, and none is missing."""
    server = gateway(db_threads=4)

    def peer(n: int) -> list[str]:
        sent = []
        with connect(server, pki) as client:
            for k in range(5):
                subject = f"Compte rendu {n}-{k}"
                raw = message_bytes(to=mailbox.address, subject=subject)
                for _attempt in range(10):
                    code, _reply = send(client, to=[mailbox.address], raw=raw)
                    if code == 250:
                        sent.append(subject)
                        break
                    assert code == 451
                    time.sleep(0.1)
        return sent

    with ThreadPoolExecutor(max_workers=10) as pool:
        sent = [subject for batch in pool.map(peer, range(10)) for subject in batch]
    assert len(sent) == 50
    filed = sorted(Message.objects.filter(mailbox=mailbox).values_list("subject", flat=True))
    assert filed == sorted(sent)


def test_stopping_lets_a_transaction_past_data_finish(gateway, pki, mailbox):
    server = gateway()
    client = connect(server, pki)
    client.mail(SENDER)
    client.rcpt(mailbox.address)
    client.putcmd("data")
    assert client.getreply()[0] == 354
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 10})
    stopper.start()
    time.sleep(0.3)
    with pytest.raises(ConnectionRefusedError):  # no new connection once stopping
        socket.create_connection(("127.0.0.1", server.port), timeout=2)
    assert stopper.is_alive()  # waiting for our transaction
    client.send(message_bytes(to=mailbox.address) + b".\r\n")
    code, reply = client.getreply()
    stopper.join(timeout=10)
    assert not stopper.is_alive()
    assert code == 250
    assert InboundMessage.objects.filter(pk=queued_id(reply)).exists()
    client.close()
