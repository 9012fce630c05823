"""Sending outside the trust space, end to end: the message is stored as usual in Envoyés, the
external recipient's e-mail goes through the outbox to a real SMTP server (STARTTLS, no
trust-list check), and it carries nothing in clear."""

import json
from email import policy
from email.parser import BytesParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.attachments.services import blob_bytes
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.delivery.models import OutboundDelivery
from apps.directory.services import contact_save
from apps.external import openpgp
from apps.external.services import (
    ExternalOptions,
    Protection,
    contact_key_import,
    external_send_raw,
)
from apps.mailbox.models import FolderKind, Message
from apps.mailbox.services import (
    Address,
    ExternalConfirmationNeeded,
    OutgoingFile,
    RecipientRefused,
    message_send,
)
from apps.notifications.sms import LocmemBackend
from tests.conftest import mailbox_of
from tests.delivery.conftest import Behaviour
from tests.external.conftest import ALICE, NOKEY

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 200 + b"\n%%EOF\n"
SUBJECT = "Bilan parodontal de Mme Lefèvre"
BODY = "Bonjour,\nci-joint le bilan parodontal et le plan de traitement.\n"
FILENAME = "bilan-lefevre.pdf"


def send(user, to, *, protection=Protection.LINK, subject_in_clear=False, phone="",
         confirmed=None, with_pdf=True) -> Message:  # fmt: skip
    upload = SimpleUploadedFile(FILENAME, PDF, content_type="application/pdf")
    files = (
        [OutgoingFile(filename=FILENAME, content_type="application/pdf", size=len(PDF),
                      stream=upload.file)]
        if with_pdf else []
    )  # fmt: skip
    return message_send(
        user=user, mailbox=mailbox_of(user), to=[Address("", a) for a in to],
        subject=SUBJECT, text=BODY, files=files,
        external=ExternalOptions(
            protection=protection, subject_in_clear=subject_in_clear, phone=phone,
            confirmed=frozenset(to if confirmed is None else confirmed),
        ),
    )  # fmt: skip


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


def assert_nothing_in_clear(raw: bytes) -> None:
    text = raw.decode("ascii", "replace")
    for secret in ("Lefèvre", "Lef=C3=A8vre", "parodontal", "plan de traitement", FILENAME):
        assert secret not in text
    assert PDF[:200] not in raw
    decoded = parse(raw)
    for part in decoded.walk():
        if part.get_content_maintype() == "text":
            content = part.get_content()
            assert "parodontal" not in content
            assert "Lefèvre" not in content


# --- OpenPGP ----------------------------------------------------------------------------------


def test_openpgp_message_decrypts_with_the_recipients_private_key(
    dentist, recipient_keys, external_mx, django_capture_on_commit_callbacks
):
    contact = contact_save(owner=dentist, email=ALICE, display_name="Alice")
    key = contact_key_import(user=dentist, contact=contact, data=recipient_keys.public[ALICE])
    mx = external_mx()
    with django_capture_on_commit_callbacks(execute=True):
        sent = send(dentist, [ALICE])
    assert sent.folder.kind == FolderKind.SENT
    assert sent.subject == SUBJECT
    row = OutboundDelivery.objects.get(message=sent)
    assert (row.route, row.status, row.recipient) == ("external", "delivered", ALICE)
    [received] = mx.handler.received
    assert mx.handler.tls_seen == [True]
    assert received.rcpt_tos == [ALICE]
    raw = received.content
    assert_nothing_in_clear(raw)
    outer = parse(raw)
    assert outer.get_content_type() == "multipart/encrypted"
    assert outer.get_param("protocol") == "application/pgp-encrypted"
    assert outer["Subject"] == "Message sécurisé de Dr Claire Morel"
    version, encrypted = outer.iter_parts()
    assert version.get_content_type() == "application/pgp-encrypted"
    assert b"Version: 1" in version.get_content()
    assert encrypted.get_content_type() == "application/octet-stream"
    armored = encrypted.get_payload(decode=True)
    assert armored.startswith(b"-----BEGIN PGP MESSAGE-----")

    inner = parse(openpgp.decrypt(armored, home=recipient_keys.home))
    assert inner["Subject"] == SUBJECT  # protected header, for OpenPGP mail clients
    assert inner.get_param("protected-headers") == "v1"
    body = inner.get_body(preferencelist=("plain",)).get_content()
    assert body.replace("\r\n", "\n") == BODY
    [attachment] = list(inner.iter_attachments())
    assert attachment.get_filename() == FILENAME
    assert attachment.get_content() == PDF
    events = set(AuditEvent.objects.values_list("event", flat=True))
    assert {Event.PGP_MESSAGE_ENCRYPTED, Event.EXTERNAL_MESSAGE_SENT, Event.MESSAGE_SENT,
            Event.DELIVERY_QUEUED, Event.DELIVERY_DELIVERED} <= events  # fmt: skip
    assert sent.external_sent[0].fingerprint == key.fingerprint


def test_the_subject_goes_in_clear_only_when_the_sender_says_so(
    dentist, recipient_keys, external_mx, django_capture_on_commit_callbacks
):
    contact = contact_save(owner=dentist, email=ALICE, display_name="Alice")
    contact_key_import(user=dentist, contact=contact, data=recipient_keys.public[ALICE])
    mx = external_mx()
    with django_capture_on_commit_callbacks(execute=True):
        send(dentist, [ALICE], subject_in_clear=True)
    assert parse(mx.handler.received[0].content)["Subject"] == SUBJECT


# --- Encrypted attachments --------------------------------------------------------------------


def test_encrypted_attachments_open_with_the_passphrase_and_not_without(
    dentist, external_mx, tmp_path, django_capture_on_commit_callbacks
):
    mx = external_mx()
    with django_capture_on_commit_callbacks(execute=True):
        sent = send(dentist, [NOKEY], protection=Protection.FILES)
    [shown] = sent.external_sent
    assert shown.protection == Protection.FILES
    assert len(shown.passphrase) == 24
    [received] = mx.handler.received
    assert_nothing_in_clear(received.content)
    notice = parse(received.content)
    assert notice["Subject"] == "Message sécurisé de Dr Claire Morel"
    text = notice.get_body(preferencelist=("plain",)).get_content()
    assert "Dr Claire Morel" in text
    assert "Kleopatra" in text
    assert shown.passphrase not in received.content.decode("ascii", "replace")
    files = {part.get_filename(): part.get_content() for part in notice.iter_attachments()}
    assert set(files) == {"message.txt.pgp", "piece-jointe-1.pdf.pgp"}

    pdf = openpgp.decrypt(
        files["piece-jointe-1.pdf.pgp"], home=tmp_path / "a", passphrase=shown.passphrase
    )
    assert pdf == PDF
    message = openpgp.decrypt(
        files["message.txt.pgp"], home=tmp_path / "b", passphrase=shown.passphrase
    ).decode()
    assert "plan de traitement" in message
    assert FILENAME in message
    with pytest.raises(openpgp.GpgError):
        openpgp.decrypt(files["piece-jointe-1.pdf.pgp"], home=tmp_path / "c", passphrase="x")
    with pytest.raises(openpgp.GpgError):
        openpgp.decrypt(files["piece-jointe-1.pdf.pgp"], home=tmp_path / "d", passphrase="")

    row = AuditEvent.objects.get(event=Event.ENCRYPTED_ATTACHMENTS_SENT)
    assert row.detail["files"] == 2
    assert row.detail["sms"] is False
    everything = json.dumps(list(AuditEvent.objects.values("detail", "target_id")))
    assert shown.passphrase not in everything


def test_the_passphrase_can_go_by_sms_without_health_data(
    dentist, external_mx, django_capture_on_commit_callbacks
):
    external_mx()
    with django_capture_on_commit_callbacks(execute=True):
        sent = send(dentist, [NOKEY], protection=Protection.FILES, phone="06 12 34 56 78")
    [(phone, text)] = LocmemBackend.outbox
    assert phone == "+33612345678"
    assert sent.external_sent[0].passphrase in text
    assert "Lefèvre" not in text
    assert "parodontal" not in text


def test_a_bad_mobile_number_refuses_the_send_and_stores_nothing(dentist):
    with pytest.raises(RecipientRefused, match="Numéro de mobile invalide"):
        send(dentist, [NOKEY], protection=Protection.FILES, phone="12")
    assert not Message.objects.exists()


# --- Secure link (apps.securelink makes the link and the notice; we send it) ------------------


def test_secure_link_notice_is_sent_and_carries_no_content(
    dentist, external_mx, django_capture_on_commit_callbacks
):
    mx = external_mx()
    with django_capture_on_commit_callbacks(execute=True):
        sent = send(dentist, [NOKEY])
    [shown] = sent.external_sent
    assert shown.protection == Protection.LINK
    assert shown.code
    [received] = mx.handler.received
    assert_nothing_in_clear(received.content)
    assert received.rcpt_tos == [NOKEY]
    assert OutboundDelivery.objects.get(message=sent).status == "delivered"


# --- Policy -----------------------------------------------------------------------------------


def test_refuse_policy_refuses_and_audits(dentist, settings):
    settings.EXTERNAL_RECIPIENTS_POLICY = "refuse"
    with pytest.raises(RecipientRefused, match="hors de l'espace de confiance"):
        send(dentist, [NOKEY])
    assert not Message.objects.exists()
    assert not OutboundDelivery.objects.exists()
    row = AuditEvent.objects.get(event=Event.EXTERNAL_RECIPIENT_REFUSED)
    assert row.detail == {"domain": "gmail.example", "policy": "refuse"}


def test_protect_policy_needs_the_sender_to_have_seen_every_external_address(dentist):
    with pytest.raises(ExternalConfirmationNeeded) as excinfo:
        send(dentist, [NOKEY, ALICE], confirmed=[NOKEY])
    assert excinfo.value.addresses == sorted([NOKEY, ALICE])
    with pytest.raises(ExternalConfirmationNeeded):
        message_send(
            user=dentist, mailbox=mailbox_of(dentist), to=[Address("", NOKEY)],
            subject="x", text="y",
        )  # fmt: skip
    assert not Message.objects.exists()


# --- Transport --------------------------------------------------------------------------------


def test_external_send_raw_queues_an_outbox_row_of_its_own(dentist, external_mx):
    sent = message_send(
        user=dentist, mailbox=mailbox_of(dentist), to=[Address("", dentist.email)],
        subject="x", text="y",
    )  # fmt: skip
    raw = b"From: a@b.fr\r\nTo: x@gmail.example\r\nMessage-ID: <n-1@test>\r\n\r\nAvis.\r\n"
    row = external_send_raw(user=dentist, message=sent, address="X@Gmail.example", raw=raw)
    assert (row.route, row.recipient, row.domain, row.msgid) == (
        "external", "x@gmail.example", "gmail.example", "n-1@test",
    )  # fmt: skip
    assert blob_bytes(row.raw) == raw
    assert row.raw_id != sent.raw_id
    assert AuditEvent.objects.filter(event=Event.DELIVERY_QUEUED, target_id=str(row.pk)).exists()


def test_starttls_is_required_by_default(
    dentist, external_mx, settings, django_capture_on_commit_callbacks
):
    mx = external_mx(tls=False)
    with django_capture_on_commit_callbacks(execute=True):
        sent = send(dentist, [NOKEY], protection=Protection.FILES)
    row = OutboundDelivery.objects.get(message=sent)
    assert row.status == "deferred"
    assert "STARTTLS" in row.reason
    assert mx.handler.received == []


def test_without_required_tls_plain_delivery_is_allowed(
    dentist, external_mx, settings, django_capture_on_commit_callbacks
):
    settings.EXTERNAL_REQUIRE_TLS = False
    mx = external_mx(tls=False)
    with django_capture_on_commit_callbacks(execute=True):
        send(dentist, [NOKEY], protection=Protection.FILES)
    assert len(mx.handler.received) == 1


def test_an_unverifiable_certificate_is_refused(
    dentist, external_mx, settings, pki, django_capture_on_commit_callbacks
):
    mx = external_mx()
    settings.EXTERNAL_CA_BUNDLE = str(pki.untrusted_ca)
    with django_capture_on_commit_callbacks(execute=True):
        sent = send(dentist, [NOKEY], protection=Protection.FILES)
    row = OutboundDelivery.objects.get(message=sent)
    assert row.status == "deferred"
    assert "certificat" in row.reason
    assert mx.handler.received == []


def test_external_and_trusted_recipients_in_one_message(
    dentist, external_mx, start_peer, django_capture_on_commit_callbacks
):
    from tests.delivery.conftest import PEER_DOMAIN

    mx = external_mx()
    peer = start_peer(Behaviour())
    from django.conf import settings

    settings.DELIVERY_ROUTES = (
        f"{PEER_DOMAIN}=127.0.0.1:{peer.port},gmail.example=127.0.0.1:{mx.port}"
    )
    doctor = f"dr.x@{PEER_DOMAIN}"
    with django_capture_on_commit_callbacks(execute=True):
        sent = send(dentist, [doctor, NOKEY], protection=Protection.FILES, confirmed=[NOKEY])
    rows = dict(OutboundDelivery.objects.filter(message=sent).values_list("recipient", "route"))
    assert rows == {doctor: "operator", NOKEY: "external"}
    assert len(peer.received) == 1
    assert len(mx.handler.received) == 1
    assert b"parodontal" in peer.received[0].content  # inside the trust space: as usual
    assert_nothing_in_clear(mx.handler.received[0].content)
