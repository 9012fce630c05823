"""Receipts coming back (DSN, MDN), read receipts we send, the sender's status list, and the
routing checks of compose."""

from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.attachments.services import blob_bytes
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.delivery.models import (
    DeliveryStatus,
    OutboundDelivery,
    ReceiptAnswer,
    ReceiptPreference,
)
from apps.delivery.receipts import receipt_absorb
from apps.ingestion.parse import parse_message
from apps.mailbox.models import FolderKind, Message
from apps.mailbox.services import Address, message_deliver_raw, message_send
from tests.conftest import client_for
from tests.conftest import mailbox_of as box

from .conftest import PEER_DOMAIN, Behaviour

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent.parent / "ingestion" / "fixtures"
DOCTOR = f"jacques.bideault@{PEER_DOMAIN}"
COMPOSE = "/messagerie/ecrire/"


def send(user, to, *, read_receipt=False) -> Message:
    return message_send(
        user=user, mailbox=box(user), to=[Address("", a) for a in to],
        subject="Demande d'avis", text="Bonjour.\n", read_receipt=read_receipt,
    )  # fmt: skip


def report_about(fixture: str, message: Message, recipient: str) -> bytes:
    raw = (FIXTURES / fixture).read_bytes()
    for old in (
        b"orig-42@chirurgien-dentiste.mssante.fr",
        b"orig-43@chirurgien-dentiste.mssante.fr",
    ):
        raw = raw.replace(old, message.message_id.encode())
    for old in (b"inconnu@Medecin.MSSante.fr", b"jacques.bideault@medecin.mssante.fr"):
        raw = raw.replace(old, recipient.encode())
    return raw


# --- Reports coming back ---------------------------------------------------------------------


def test_a_dsn_about_a_sent_message_updates_its_recipient_and_is_not_filed(alice, trusted_peer):
    sent = send(alice, [DOCTOR])
    raw = report_about("dsn.eml", sent, DOCTOR)
    assert receipt_absorb(mailbox=box(alice), parsed=parse_message(raw), raw=raw) is True
    row = OutboundDelivery.objects.get(message=sent)
    assert row.status == DeliveryStatus.FAILED
    assert row.enhanced_status == "5.1.1"
    assert "5.1.1" in row.reason
    assert AuditEvent.objects.filter(event=Event.DELIVERY_REPORT_RECEIVED).count() == 1


def test_an_mdn_marks_the_recipient_read(alice, trusted_peer):
    sent = send(alice, [DOCTOR], read_receipt=True)
    raw = report_about("mdn.eml", sent, DOCTOR)
    assert receipt_absorb(mailbox=box(alice), parsed=parse_message(raw), raw=raw) is True
    row = OutboundDelivery.objects.get(message=sent)
    assert row.status == DeliveryStatus.READ
    assert row.read_at is not None
    assert AuditEvent.objects.filter(event=Event.DELIVERY_READ).count() == 1


def test_reports_about_other_messages_and_ordinary_mail_are_left_to_the_inbox(
    alice, bob, trusted_peer
):
    sent = send(alice, [DOCTOR])
    raw = report_about("dsn.eml", sent, DOCTOR)
    # Another mailbox's message, an unknown Message-ID, an ordinary message: not absorbed.
    assert receipt_absorb(mailbox=box(bob), parsed=parse_message(raw), raw=raw) is False
    other = (FIXTURES / "dsn.eml").read_bytes()
    assert receipt_absorb(mailbox=box(alice), parsed=parse_message(other), raw=other) is False
    plain = b"From: a@b.fr\r\nTo: c@d.fr\r\nSubject: x\r\nMessage-ID: <p@b.fr>\r\n\r\nHello\r\n"
    assert receipt_absorb(mailbox=box(alice), parsed=parse_message(plain), raw=plain) is False
    assert OutboundDelivery.objects.get(message=sent).status == DeliveryStatus.PENDING


# --- Read receipts we send --------------------------------------------------------------------


def test_asked_reader_sends_a_receipt_and_the_local_sender_sees_read(alice, bob):
    sent = send(alice, [bob.email], read_receipt=True)
    local_row = OutboundDelivery.objects.get(message=sent)
    assert (local_row.route, local_row.status) == ("local", DeliveryStatus.DELIVERED)
    received = Message.objects.get(mailbox=box(bob))
    reader = client_for(bob)
    page = reader.get(f"/messagerie/message/{received.pk}/").content.decode()
    assert "demande un accusé de lecture" in page
    response = reader.post(f"/acheminement/accuse-de-lecture/{received.pk}/", {"answer": "send"})
    assert response.status_code == 302
    local_row.refresh_from_db()
    assert local_row.status == DeliveryStatus.READ
    # Absorbed: not filed in Alice's inbox as a message.
    assert not Message.objects.filter(mailbox=box(alice), folder__kind=FolderKind.INBOX).exists()
    assert AuditEvent.objects.filter(event=Event.READ_RECEIPT_SENT, actor=bob).count() == 1
    # Asked once only.
    page = reader.get(f"/messagerie/message/{received.pk}/").content.decode()
    assert "demande un accusé de lecture" not in page
    # The sender sees it.
    sender_page = client_for(alice).get(f"/messagerie/message/{sent.pk}/").content.decode()
    assert "lu le" in sender_page


def test_ignoring_sends_nothing(alice, bob):
    sent = send(alice, [bob.email], read_receipt=True)
    received = Message.objects.get(mailbox=box(bob))
    client_for(bob).post(f"/acheminement/accuse-de-lecture/{received.pk}/", {"answer": "ignore"})
    assert ReceiptAnswer.objects.get(message=received).kind == "ignored"
    assert OutboundDelivery.objects.get(message=sent).status == DeliveryStatus.DELIVERED
    assert not AuditEvent.objects.filter(event=Event.READ_RECEIPT_SENT).exists()


def test_the_answer_needs_csrf_and_access(alice, bob):
    send(alice, [bob.email], read_receipt=True)
    received = Message.objects.get(mailbox=box(bob))
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client_for(bob).cookies  # logged in, but posting without the token
    url = f"/acheminement/accuse-de-lecture/{received.pk}/"
    assert strict.post(url, {"answer": "send"}).status_code == 403
    assert client_for(alice).post(url, {"answer": "send"}).status_code == 404


@pytest.mark.parametrize(("mode", "status"), [("always", "read"), ("never", "delivered")])
def test_the_setting_answers_without_asking(alice, bob, mode, status):
    reader = client_for(bob)
    assert reader.post("/acheminement/accuses-de-lecture/", {"mode": mode}).status_code == 302
    assert ReceiptPreference.objects.get(user=bob).mode == mode
    assert (
        "Quand un expéditeur demande"
        in reader.get("/acheminement/accuses-de-lecture/").content.decode()
    )
    sent = send(alice, [bob.email], read_receipt=True)
    received = Message.objects.get(mailbox=box(bob))
    page = reader.get(f"/messagerie/message/{received.pk}/").content.decode()
    assert "demande un accusé de lecture" not in page
    assert OutboundDelivery.objects.get(message=sent).status == status


def test_a_remote_sender_gets_an_mdn_over_smtp_with_a_null_return_path(
    bob, start_peer, django_capture_on_commit_callbacks
):
    peer = start_peer()
    raw = (
        f"From: Dr Bideault <{DOCTOR}>\r\nTo: {bob.email}\r\nSubject: Avis\r\n"
        f"Message-ID: <avis-1@{PEER_DOMAIN}>\r\nDate: Mon, 17 Mar 2025 09:00:00 +0100\r\n"
        f"Disposition-Notification-To: {DOCTOR}\r\n\r\nBonjour.\r\n"
    ).encode()
    received = message_deliver_raw(mailbox=box(bob), raw=raw)
    reader = client_for(bob)
    reader.post("/acheminement/accuses-de-lecture/", {"mode": "always"})
    with django_capture_on_commit_callbacks(execute=True):
        reader.get(f"/messagerie/message/{received.pk}/")
    row = OutboundDelivery.objects.get(recipient=DOCTOR)
    assert row.envelope_from == ""
    assert row.status == DeliveryStatus.DELIVERED
    [mdn] = peer.received
    assert mdn.mail_from in ("", "<>")  # the null return path
    parsed = parse_message(mdn.content)
    assert parsed.is_report == "mdn"
    assert parsed.report.original_message_id == f"avis-1@{PEER_DOMAIN}"
    assert parsed.report.entries[0].disposition == (
        "automatic-action/MDN-sent-automatically; displayed"
    )
    assert parsed.text.startswith("Le message « Avis »")


def test_a_patient_always_gets_a_receipt(bob, settings, trusted_peer):
    patient = f"123456789012345@{settings.MSSANTE_PATIENT_DOMAIN}"
    raw = (
        f"From: {patient}\r\nTo: {bob.email}\r\nSubject: Question\r\n"
        f"Message-ID: <q-1@{settings.MSSANTE_PATIENT_DOMAIN}>\r\n"
        f"Disposition-Notification-To: {patient}\r\n\r\nBonjour docteur.\r\n"
    ).encode()
    received = message_deliver_raw(mailbox=box(bob), raw=raw)
    page = client_for(bob).get(f"/messagerie/message/{received.pk}/").content.decode()
    assert "demande un accusé de lecture" not in page  # not asked: sent
    row = OutboundDelivery.objects.get(recipient=patient)
    assert (row.route, row.status, row.envelope_from) == ("patient", "pending", "")


# --- The sender's status list -----------------------------------------------------------------


def test_the_status_list_shows_every_state_in_constant_queries(alice, bob, trusted_peer):
    one = send(alice, [DOCTOR])
    many = send(alice, [DOCTOR, f"a@{PEER_DOMAIN}", f"b@{PEER_DOMAIN}", bob.email])
    rows = {r.recipient: r for r in OutboundDelivery.objects.filter(message=many)}
    OutboundDelivery.objects.filter(pk=rows[f"a@{PEER_DOMAIN}"].pk).update(
        status="deferred", reason="refus temporaire du serveur distant (450 4.2.1)"
    )
    OutboundDelivery.objects.filter(pk=rows[f"b@{PEER_DOMAIN}"].pk).update(
        status="failed", reason="refusé par le serveur distant (550 5.1.1)"
    )
    client = client_for(alice)
    client.get(f"/messagerie/message/{one.pk}/")
    with CaptureQueriesContext(connection) as few:
        client.get(f"/messagerie/message/{one.pk}/")
    with CaptureQueriesContext(connection) as more:
        page = client.get(f"/messagerie/message/{many.pk}/").content.decode()
    assert len(more) == len(few)
    assert "en attente" in page
    assert "remis le" in page  # bob, local
    for text in ("différé", "prochain essai à", "450 4.2.1", "échec", "550 5.1.1"):
        assert text in page
    # The recipient's copy shows no status list.
    received = Message.objects.get(mailbox=box(bob))
    assert "Remise aux destinataires" not in (
        client_for(bob).get(f"/messagerie/message/{received.pk}/").content.decode()
    )


# --- Routing in compose -----------------------------------------------------------------------


def compose(client, user, to):
    data = {"mailbox": box(user).pk, "to": to, "subject": "Compte rendu",
            "text": "Bonjour,\nvoici le compte rendu.\n"}  # fmt: skip
    return client.post(COMPOSE, data)


def test_an_address_outside_the_trust_space_is_refused_and_what_was_typed_is_kept(alice):
    response = compose(client_for(alice), alice, "someone@gmail.com")
    assert response.status_code == 200
    page = response.content.decode()
    assert "hors de l&#x27;espace de confiance MSSanté" in page
    assert "voici le compte rendu" in page
    assert not Message.objects.exists()
    assert not OutboundDelivery.objects.exists()


def test_an_unknown_local_address_is_refused(alice):
    response = compose(client_for(alice), alice, f"nobody@{alice.email.rpartition('@')[2]}")
    assert "Aucune boîte aux lettres" in response.content.decode()


def test_local_and_remote_recipients_in_one_send(alice, bob, trusted_peer):
    response = compose(client_for(alice), alice, f"{bob.email}, {DOCTOR}")
    assert response.status_code == 302
    sent = Message.objects.get(mailbox=box(alice))
    assert Message.objects.filter(mailbox=box(bob), message_id=sent.message_id).exists()
    rows = dict(OutboundDelivery.objects.filter(message=sent).values_list("recipient", "status"))
    assert rows == {bob.email: "delivered", DOCTOR: "pending"}
    assert blob_bytes(OutboundDelivery.objects.get(recipient=DOCTOR).raw) == blob_bytes(sent.raw)


def test_a_refused_recipient_stores_nothing_for_the_others(alice, bob, trusted_peer):
    response = compose(client_for(alice), alice, f"{bob.email}, {DOCTOR}, x@gmail.com")
    assert response.status_code == 200
    assert not Message.objects.exists()
    assert not OutboundDelivery.objects.exists()


def test_status_list_after_real_delivery(alice, start_peer, django_capture_on_commit_callbacks):
    start_peer(Behaviour())
    with django_capture_on_commit_callbacks(execute=True):
        sent = send(alice, [DOCTOR])
    page = client_for(alice).get(f"/messagerie/message/{sent.pk}/").content.decode()
    assert "remis le" in page


def test_no_receipt_is_offered_to_an_address_outside_the_trust_space(bob):
    raw = (
        b"From: someone@gmail.com\r\nSubject: Bonjour\r\nMessage-ID: <g-1@gmail.com>\r\n"
        b"Disposition-Notification-To: someone@gmail.com\r\n\r\nBonjour.\r\n"
    )
    received = message_deliver_raw(mailbox=box(bob), raw=raw)
    page = client_for(bob).get(f"/messagerie/message/{received.pk}/").content.decode()
    assert "demande un accusé de lecture" not in page
    assert not OutboundDelivery.objects.exists()
