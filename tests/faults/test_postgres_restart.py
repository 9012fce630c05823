"""PostgreSQL stopped, or restarted, while a peer is inside DATA with the gateway: the gateway
cannot commit, so it answers ``451 4.3.0`` (never 250, never 5xx); the peer retries once the
database is back, and the message is stored and filed exactly once.

The instance is a throwaway cluster of this test (``own_postgres``), never the shared one; the
gateway is the real ``manage.py smtp_gateway`` process."""

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from .conftest import create_database, free_port, report, wait_until

pytestmark = pytest.mark.slow

LOCAL = "secretariat@gateway.mssante.test"
PEER_DOMAIN = "peer.mssante.test"


def message(n: int) -> tuple[str, bytes]:
    msgid = make_msgid(domain=PEER_DOMAIN)
    mail = EmailMessage()
    mail["From"] = f"dr.durand@{PEER_DOMAIN}"
    mail["To"] = LOCAL
    mail["Subject"] = f"Compte rendu {n}"
    mail["Message-ID"] = msgid
    mail["Date"] = "Sat, 28 Nov 2026 10:00:00 +0100"
    mail.set_content("".join(f"Ligne {i} du compte rendu.\n" for i in range(2000)))
    raw = mail.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return msgid.strip("<>"), raw


def connect(port: int, pki) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, local_hostname="mx.peer.test", timeout=30)
    client.starttls(context=ssl.create_default_context(cafile=str(pki.ca)))
    client.ehlo()
    return client


def send_with_fault(port: int, pki, raw: bytes, fault, *, hang_up: bool = False):
    """One transaction; ``fault()`` runs after half of the data is sent, before the rest and
    the final dot. ``hang_up``: close the connection right after the dot (no reply read)."""
    client = connect(port, pki)
    try:
        assert client.mail(f"dr.durand@{PEER_DOMAIN}")[0] == 250
        assert client.rcpt(LOCAL)[0] == 250
        client.putcmd("data")
        assert client.getreply()[0] == 354
        half = raw.index(b"\r\n", len(raw) // 2) + 2
        client.send(raw[:half])
        fault()
        client.send(raw[half:] + b".\r\n")
        if hang_up:  # once the gateway is storing it: our 250 will find nobody
            time.sleep(0.05)
            return (0, b"")
        return client.getreply()
    finally:
        client.close()


def send_as_a_peer_does(port: int, pki, raw: bytes, *, tries: int = 10) -> list[int]:
    """Retry on 4xx (a real MTA's queue, with a short back-off); the replies, in order."""
    replies = []
    for _ in range(tries):
        client = connect(port, pki)
        try:
            client.sendmail(f"dr.durand@{PEER_DOMAIN}", [LOCAL], raw)
        except smtplib.SMTPResponseException as exc:
            code = exc.smtp_code
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0]
        else:
            code = 250
        finally:
            client.close()
        replies.append(code)
        if not 400 <= code < 500:  # done, or refused for good (the caller fails on it)
            return replies
        time.sleep(0.5)
    return replies


def test_postgres_down_or_restarted_during_data_gets_451_then_the_retry_stores_once(
    own_postgres, make_site, pki
):
    database_url = create_database(own_postgres.url(), "mssweb_faults")
    site = make_site(
        database_url=database_url,
        CELERY_TASK_ALWAYS_EAGER="true",  # ingestion inline: the filed copy is there at once
        GATEWAY_HOSTNAME="mx.mssweb.test",
        GATEWAY_TLS_CERT=str(pki.ours[0]),
        GATEWAY_TLS_KEY=str(pki.ours[1]),
        GATEWAY_REQUIRE_TLS="true",
        GATEWAY_DB_THREADS="2",
    )
    site.agent("mailbox", "--address", LOCAL)
    port = free_port()
    gateway = site.gateway(port=port)

    # 1. The database goes down inside DATA and is still down at the final dot: 451.
    first_id, first = message(1)
    code, reply = send_with_fault(port, pki, first, own_postgres.stop)
    assert (code, reply[:5]) == (451, b"4.3.0"), reply
    own_postgres.start()
    first_replies = [code, *send_as_a_peer_does(port, pki, first)]
    assert first_replies[-1] == 250, first_replies

    # 2. The database restarts inside DATA (the gateway's connections are stale): 250 at
    # once, or 451 and the retry.
    second_id, second = message(2)

    def restart():
        own_postgres.stop()
        own_postgres.start()

    code, reply = send_with_fault(port, pki, second, restart)
    assert code == 250 or (code, reply[:5]) == (451, b"4.3.0"), (code, reply)
    second_replies = [code] if code == 250 else [code, *send_as_a_peer_does(port, pki, second)]
    assert second_replies[-1] == 250, second_replies

    # 3. The ambiguous window: the peer's connection is cut after its final dot, before our
    # 250 reaches it; it sends the same message again. Stored twice at most, filed once.
    third_id, third = message(3)
    send_with_fault(port, pki, third, lambda: None, hang_up=True)
    third_replies = send_as_a_peer_does(port, pki, third)
    assert third_replies == [250], third_replies

    state = wait_until(
        lambda: (s := site.agent("inbound-state", "--address", LOCAL))["inbound_status"]
        == {"ingested": sum(s["inbound"].values())} and s,
        timeout=30, what="ingestion",
    )  # fmt: skip
    assert gateway.alive, gateway.output()[-3000:]
    assert "Traceback" not in gateway.output()
    for msgid in (first_id, second_id):
        assert state["inbound"].get(msgid) == 1, state  # nothing kept from the refused try
    assert state["inbound"].get(third_id) in (1, 2), state
    ids = (first_id, second_id, third_id)
    assert {m: state["filed"].get(m) for m in ids} == dict.fromkeys(ids, 1), state
    stored_twice = state["inbound"][third_id] - 1
    assert state["outcomes"].get("duplicate", 0) == stored_twice, state
    report(
        f"FAULT PostgreSQL down/restarted during DATA: accepted=3 "
        f"filed={sum(state['filed'].get(m, 0) for m in ids)} "
        f"stored_twice={stored_twice} (filed once) duplicates=0 "
        f"lost={sum(1 for m in ids if not state['filed'].get(m))} "
        f"replies={first_replies}+{second_replies}+{third_replies}"
    )
