"""What the gateway's throughput rests on: the group commit that saves the raws' blob rows (the
ciphertext inline) with the messages' rows and audit events in one transaction, and the
per-process RCPT cache."""

import hashlib
import smtplib
import time

import pytest
from django.db import DataError

from apps.attachments.models import StoredBlob
from apps.attachments.services import blob_bytes, blob_storage
from apps.audit.events import Event
from apps.audit.integrity import chain_verify
from apps.audit.models import AuditEvent
from apps.gateway import services
from apps.gateway.models import InboundMessage
from tests.gateway.conftest import LOCAL_DOMAIN, PEER_DOMAIN, connect, make_mailbox, message_bytes

# SQLite stores the NUL and the audit check refuses it; psycopg refuses it before that.
REFUSED = (ValueError, DataError)


def _envelope(**fields) -> services.InboundEnvelope:
    return services.InboundEnvelope(
        mail_from=f"dr.durand@{PEER_DOMAIN}", rcpt_tos=(f"secretariat@{LOCAL_DOMAIN}",),
        peer_ip="127.0.0.1", helo="mx.peer.test", **fields,
    )  # fmt: skip


def test_a_group_commits_blobs_rows_and_one_audit_event_per_message_together(mailbox):
    raws = [message_bytes(to=mailbox.address, subject=f"Compte rendu {n}") for n in range(3)]
    prepared = [services.inbound_prepare(raw=raw, envelope=_envelope()) for raw in raws]
    assert not StoredBlob.objects.exists()  # encrypted, not saved yet
    assert all(row.raw.inline for row in prepared)  # the ciphertext is in the blob's row
    assert [row.sha256 for row in prepared] == [hashlib.sha256(raw).hexdigest() for raw in raws]

    rows = services.inbound_commit(rows=prepared, enqueue=False)

    assert [blob_bytes(row.raw) for row in rows] == raws
    assert StoredBlob.objects.count() == 3
    accepted = AuditEvent.objects.filter(event=Event.INBOUND_ACCEPTED).order_by("id")
    assert [int(event.target_id) for event in accepted] == [row.pk for row in rows]
    assert chain_verify().ok


def test_a_failed_group_keeps_no_row_and_each_message_can_then_commit_alone(mailbox):
    """One message of the group cannot be audited (a NUL in what the peer sent): the whole
    transaction rolls back, blob rows included; the gateway then commits the messages one by
    one; the raw of the one that fails again was in its unsaved row only (never in a file)."""
    good_raw = message_bytes(to=mailbox.address, subject="Bon")
    bad_raw = message_bytes(to=mailbox.address, subject="Mauvais")
    good = services.inbound_prepare(raw=good_raw, envelope=_envelope())
    bad = services.inbound_prepare(raw=bad_raw, envelope=_envelope(client_cert_dn="CN=a\x00"))
    storage = blob_storage()

    with pytest.raises(REFUSED):
        services.inbound_commit(rows=[good, bad], enqueue=False)
    assert not StoredBlob.objects.exists()
    assert not InboundMessage.objects.exists()
    assert not AuditEvent.objects.exists()
    assert not storage.exists(good.raw.name)  # inline: durable with the commit, or not at all
    assert not storage.exists(bad.raw.name)

    [row] = services.inbound_commit(rows=[good], enqueue=False)  # fresh ids
    assert blob_bytes(StoredBlob.objects.get(pk=row.raw_id)) == good_raw
    with pytest.raises(REFUSED):
        services.inbound_commit(rows=[bad], enqueue=False)
    assert blob_bytes(StoredBlob.objects.get(pk=row.raw_id)) == good_raw
    assert InboundMessage.objects.count() == 1
    assert chain_verify().ok


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_audit_flush")
def test_rcpt_answers_are_cached_per_process_then_expire(gateway, pki, mailbox):
    server = gateway(rcpt_cache_seconds=0.5)
    late = f"nouveau@{LOCAL_DOMAIN}"
    client = connect(server, pki)
    try:
        assert client.mail(f"dr.durand@{PEER_DOMAIN}")[0] == 250
        assert client.rcpt(late)[0] == 550
        make_mailbox("nouveau")
        client.rset()
        assert client.mail(f"dr.durand@{PEER_DOMAIN}")[0] == 250
        assert client.rcpt(late)[0] == 550  # remembered for up to 0.5 s
        time.sleep(0.6)
        client.rset()
        assert client.mail(f"dr.durand@{PEER_DOMAIN}")[0] == 250
        assert client.rcpt(late)[0] == 250  # seen once the answer expired
        client.quit()
    except smtplib.SMTPException:
        client.close()
        raise


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_audit_flush")
def test_rcpt_cache_off_asks_the_database_every_time(gateway, pki):
    server = gateway(rcpt_cache_seconds=0)
    late = f"plus-tard@{LOCAL_DOMAIN}"
    client = connect(server, pki)
    assert client.mail(f"dr.durand@{PEER_DOMAIN}")[0] == 250
    assert client.rcpt(late)[0] == 550
    make_mailbox("plus-tard")
    client.rset()
    assert client.mail(f"dr.durand@{PEER_DOMAIN}")[0] == 250
    assert client.rcpt(late)[0] == 250
    client.quit()
