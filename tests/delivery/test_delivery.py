"""Outbound delivery to real SMTP peers on loopback (STARTTLS, test PKI, trust list)."""

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.attachments.services import blob_bytes
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.delivery import services
from apps.delivery.models import DeliveryStatus, OutboundDelivery
from apps.ingestion.parse import parse_message
from apps.mailbox.models import FolderKind, Message
from apps.mailbox.services import Address, message_send
from tests.conftest import mailbox_of

from .conftest import PEER_DOMAIN, Behaviour, free_port

pytestmark = pytest.mark.django_db

DOCTOR = f"jacques.bideault@{PEER_DOMAIN}"


def send(user, *, to=(DOCTOR,), cc=(), bcc=(), read_receipt=False, capture=None) -> Message:
    def call():
        return message_send(
            user=user, mailbox=mailbox_of(user), to=[Address("", a) for a in to],
            cc=[Address("", a) for a in cc], bcc=[Address("", a) for a in bcc],
            subject="Demande d'avis", text="Bonjour,\nun avis sur ce patient ?\n",
            read_receipt=read_receipt,
        )  # fmt: skip

    if capture is None:
        return call()
    with capture(execute=True):
        return call()


def only_row(message: Message) -> OutboundDelivery:
    return OutboundDelivery.objects.get(message=message, route="operator")


def audited(event: Event) -> int:
    return AuditEvent.objects.filter(event=event).count()


def test_a_peer_that_accepts_receives_the_stored_message_byte_for_byte(
    alice, start_peer, django_capture_on_commit_callbacks
):
    peer = start_peer()
    sent = send(alice, capture=django_capture_on_commit_callbacks)
    row = only_row(sent)
    assert row.status == DeliveryStatus.DELIVERED, row.reason
    assert row.delivered_at is not None
    assert row.attempts == 1
    assert row.lease_until is None
    [received] = peer.received
    assert received.content == blob_bytes(sent.raw)
    assert f"<{sent.message_id}>".encode() in received.content
    assert received.mail_from == mailbox_of(alice).address
    assert received.rcpt_tos == [DOCTOR]
    assert peer.handler.tls_seen == [True]
    assert audited(Event.DELIVERY_QUEUED) == 1
    assert audited(Event.DELIVERY_DELIVERED) == 1


def test_a_temporary_refusal_defers_with_backoff_and_the_retry_keeps_the_message_id(
    alice, start_peer, django_capture_on_commit_callbacks
):
    peer = start_peer(Behaviour(rcpt={DOCTOR: "450 4.2.1 Mailbox busy, try later"}))
    before = timezone.now()
    sent = send(alice, capture=django_capture_on_commit_callbacks)
    row = only_row(sent)
    assert row.status == DeliveryStatus.DEFERRED
    assert row.last_reply == 450
    assert row.enhanced_status == "4.2.1"
    assert "450 4.2.1" in row.reason
    delay = row.next_attempt_at - before
    assert timedelta(minutes=4, seconds=50) < delay < timedelta(minutes=5, seconds=10)
    assert not peer.received
    assert audited(Event.DELIVERY_DEFERRED) == 1

    # Not due yet: nothing happens.
    assert services.deliveries_run(ids=[row.pk]) == 0
    # Due (clock moved on): the same message goes, with the same Message-ID.
    peer.handler.behaviour.rcpt = {}
    assert services.deliveries_run(now=row.next_attempt_at + timedelta(seconds=1)) == 1
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert row.attempts == 2
    assert f"Message-ID: <{sent.message_id}>".encode() in peer.received[0].content


def test_backoff_doubles_up_to_an_hour(settings):
    assert services._backoff(1) == timedelta(minutes=5)
    assert services._backoff(2) == timedelta(minutes=10)
    assert services._backoff(4) == timedelta(minutes=40)
    assert services._backoff(5) == timedelta(hours=1)
    assert services._backoff(30) == timedelta(hours=1)


def test_a_permanent_refusal_fails_and_files_a_french_report_in_the_senders_inbox(
    alice, start_peer, django_capture_on_commit_callbacks
):
    start_peer(Behaviour(rcpt={DOCTOR: "550 5.1.1 User unknown"}))
    sent = send(alice, capture=django_capture_on_commit_callbacks)
    row = only_row(sent)
    assert row.status == DeliveryStatus.FAILED
    assert row.enhanced_status == "5.1.1"
    assert audited(Event.DELIVERY_FAILED) == 1
    report = Message.objects.get(mailbox=mailbox_of(alice), folder__kind=FolderKind.INBOX)
    assert report.conversation_id == sent.conversation_id  # threaded with what was sent
    raw = blob_bytes(report.raw)
    parsed = parse_message(raw)
    assert parsed.is_report == "dsn"
    assert parsed.report.original_message_id == sent.message_id
    [entry] = parsed.report.entries
    assert (entry.final_recipient, entry.action, entry.status) == (DOCTOR, "failed", "5.1.1")
    root = message_from_bytes(raw, policy=policy.default)
    assert root.get_content_type() == "multipart/report"
    assert root.get_param("report-type") == "delivery-status"
    first, second, third = root.iter_parts()
    assert first.get_content_type() == "text/plain"
    assert "n'a pas pu être remis" in first.get_content()
    assert second.get_content_type() == "message/delivery-status"
    assert third.get_content_type() == "text/rfc822-headers"
    assert "un avis sur ce patient" not in raw.decode("ascii", "replace")  # headers only


def test_a_refusal_at_the_end_of_data_fails_every_recipient_of_the_transaction(
    alice, start_peer, django_capture_on_commit_callbacks
):
    other = f"marie.curie@{PEER_DOMAIN}"
    start_peer(Behaviour(data="554 5.6.0 Content rejected"))
    sent = send(alice, to=(DOCTOR, other), capture=django_capture_on_commit_callbacks)
    rows = OutboundDelivery.objects.filter(message=sent)
    assert {r.status for r in rows} == {DeliveryStatus.FAILED}
    # One report for the message, naming both.
    [report] = Message.objects.filter(mailbox=mailbox_of(alice), folder__kind=FolderKind.INBOX)
    assert {e.final_recipient for e in parse_message(blob_bytes(report.raw)).report.entries} == {
        DOCTOR,
        other,
    }


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (Behaviour(data="disconnect"), "connexion interrompue"),
        (Behaviour(data="stall"), "délai dépassé"),
        (Behaviour(data="451 4.3.0 Local error"), "451 4.3.0"),
    ],
    ids=["disconnect-after-data", "stall", "451-after-data"],
)
def test_trouble_during_the_conversation_defers(
    alice, start_peer, django_capture_on_commit_callbacks, behaviour, reason
):
    start_peer(behaviour)
    sent = send(alice, capture=django_capture_on_commit_callbacks)
    row = only_row(sent)
    assert row.status == DeliveryStatus.DEFERRED
    assert reason in row.reason
    assert row.next_attempt_at > timezone.now()
    assert row.lease_until is None


def test_a_peer_without_starttls_gets_nothing(
    alice, start_peer, django_capture_on_commit_callbacks
):
    peer = start_peer(tls=False)
    sent = send(alice, capture=django_capture_on_commit_callbacks)
    row = only_row(sent)
    assert row.status == DeliveryStatus.DEFERRED
    assert "STARTTLS" in row.reason
    assert not peer.received


def test_a_peer_whose_certificate_dn_is_not_in_the_trust_list_gets_nothing(
    alice, start_peer, pki, django_capture_on_commit_callbacks
):
    peer = start_peer(cert=pki.rogue)
    sent = send(alice, capture=django_capture_on_commit_callbacks)
    row = only_row(sent)
    assert row.status == DeliveryStatus.DEFERRED
    assert row.reason == "certificat du serveur distant non reconnu par la liste de confiance"
    assert not peer.received


def test_a_peer_certificate_from_an_untrusted_ca_is_refused(
    alice, start_peer, pki, django_capture_on_commit_callbacks
):
    peer = start_peer(cert=pki.stranger)  # the right DN, the wrong CA
    sent = send(alice, capture=django_capture_on_commit_callbacks)
    row = only_row(sent)
    assert row.status == DeliveryStatus.DEFERRED
    assert "certificat du serveur distant refusé" in row.reason
    assert not peer.received


def test_a_peer_that_cannot_be_reached_defers(alice, start_peer, settings):
    sent = send(alice)  # on_commit not run: nothing tried yet
    row = only_row(sent)
    assert row.status == DeliveryStatus.PENDING
    start_peer()
    settings.DELIVERY_ROUTES = f"{PEER_DOMAIN}=127.0.0.1:{free_port()}"  # nobody listens
    services.deliveries_run(ids=[row.pk])
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DEFERRED
    assert "connexion impossible" in row.reason


def test_a_row_past_its_lifetime_fails_with_a_report_without_trying(alice, start_peer):
    peer = start_peer()
    sent = send(alice)
    row = only_row(sent)
    OutboundDelivery.objects.filter(pk=row.pk).update(
        status=DeliveryStatus.DEFERRED, reason="refus temporaire du serveur distant (450 4.2.1)",
        expires_at=timezone.now() - timedelta(seconds=1),
    )  # fmt: skip
    services.deliveries_run(ids=[row.pk])
    row.refresh_from_db()
    assert row.status == DeliveryStatus.FAILED
    assert "aucune remise possible en 5 jours" in row.reason
    assert not peer.received
    assert Message.objects.filter(mailbox=mailbox_of(alice), folder__kind=FolderKind.INBOX).exists()


def test_a_deferral_after_the_lifetime_is_a_failure(alice, start_peer):
    start_peer(Behaviour(rcpt={DOCTOR: "421 4.3.2 Shutting down"}))
    sent = send(alice)
    row = only_row(sent)
    now = row.expires_at - timedelta(seconds=1)
    OutboundDelivery.objects.filter(pk=row.pk).update(expires_at=now)
    services.deliveries_run(ids=[row.pk], now=now - timedelta(seconds=1))
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DEFERRED  # still within its lifetime
    services.deliveries_run(ids=[row.pk], now=row.next_attempt_at)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.FAILED


def test_the_sweeper_reenqueues_due_rows_and_expired_leases_only(alice, start_peer):
    peer = start_peer()
    now = timezone.now()
    due = only_row(send(alice))  # pending: its task was lost (on_commit never ran)
    lost = only_row(send(alice))
    busy = only_row(send(alice))
    later = only_row(send(alice))
    OutboundDelivery.objects.filter(pk=lost.pk).update(
        lease_until=now - timedelta(seconds=1),
        attempts=1,  # its worker was killed
    )
    OutboundDelivery.objects.filter(pk=busy.pk).update(lease_until=now + timedelta(minutes=5))
    OutboundDelivery.objects.filter(pk=later.pk).update(
        status=DeliveryStatus.DEFERRED, next_attempt_at=now + timedelta(minutes=5)
    )
    assert sorted(services.deliveries_due()) == sorted([due.pk, lost.pk])
    assert services.deliveries_sweep() == 2  # eager Celery: delivered inline
    statuses = dict(OutboundDelivery.objects.values_list("pk", "status"))
    assert statuses[due.pk] == statuses[lost.pk] == DeliveryStatus.DELIVERED
    assert statuses[busy.pk] == DeliveryStatus.PENDING
    assert statuses[later.pk] == DeliveryStatus.DEFERRED
    assert len(peer.received) == 2


def test_the_sweep_command_for_cron(alice, start_peer):
    peer = start_peer()
    send(alice)
    call_command("delivery_sweep")
    assert len(peer.received) == 1
    send(alice)
    call_command("delivery_sweep", "--run")
    assert len(peer.received) == 2


def test_dsn_is_requested_when_a_receipt_is_asked_and_the_peer_supports_it(
    alice, start_peer, django_capture_on_commit_callbacks
):
    peer = start_peer(Behaviour(dsn=True))
    sent = send(alice, read_receipt=True, capture=django_capture_on_commit_callbacks)
    assert only_row(sent).dsn_requested
    [received] = peer.received
    assert "RET=HDRS" in received.mail_options
    assert "NOTIFY=SUCCESS,FAILURE" in received.rcpt_options
    assert f"ORCPT=RFC822;{DOCTOR.upper()}" in received.rcpt_options  # aiosmtpd upper-cases


def test_no_dsn_parameters_without_a_receipt_request(
    alice, start_peer, django_capture_on_commit_callbacks
):
    peer = start_peer(Behaviour(dsn=True))
    send(alice, capture=django_capture_on_commit_callbacks)
    assert peer.received[0].mail_options == []
    assert peer.received[0].rcpt_options == []


def test_bcc_recipients_get_a_row_and_never_appear_in_the_headers(
    alice, start_peer, django_capture_on_commit_callbacks
):
    hidden = f"secret.colleague@{PEER_DOMAIN}"
    peer = start_peer()
    sent = send(alice, bcc=(hidden,), capture=django_capture_on_commit_callbacks)
    rows = OutboundDelivery.objects.filter(message=sent)
    assert set(rows.values_list("recipient", flat=True)) == {DOCTOR, hidden}
    [received] = peer.received
    assert sorted(received.rcpt_tos) == sorted([DOCTOR, hidden])
    assert hidden.encode() not in received.content
    assert b"Bcc" not in received.content
