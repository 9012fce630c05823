"""Ingestion from the stored raw copy: retries, quarantine, replay, sweeper, staff admin."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from apps.attachments.models import StoredBlob
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.gateway import services
from apps.gateway.models import InboundDelivery, InboundMessage, InboundStatus
from apps.mailbox.models import Message
from tests.conftest import login
from tests.gateway.conftest import LOCAL_DOMAIN, PEER_DOMAIN, make_mailbox, message_bytes

pytestmark = pytest.mark.django_db

SENDER = f"dr.durand@{PEER_DOMAIN}"


def accept(raw: bytes, to: list[str]) -> InboundMessage:
    return services.inbound_accept(
        raw=raw,
        envelope=services.InboundEnvelope(mail_from=SENDER, rcpt_tos=tuple(to), peer_ip="::1"),
    )


def events(event: Event) -> int:
    return AuditEvent.objects.filter(event=event).count()


def test_ingestion_failures_are_retried_then_quarantined_then_replayed(
    settings, django_capture_on_commit_callbacks, admin_client_verified
):
    settings.GATEWAY_INGEST_MAX_ATTEMPTS = 3
    address = f"future@{LOCAL_DOMAIN}"  # its mailbox was deleted after the message came in
    raw = message_bytes(to=address, body="Résultats joints.\n")
    with django_capture_on_commit_callbacks(execute=True):
        inbound = accept(raw, [address])
    inbound.refresh_from_db()
    assert inbound.status == InboundStatus.QUARANTINED
    assert inbound.attempts == 3
    assert inbound.last_error == "MailboxGone: A recipient mailbox no longer exists."
    assert events(Event.INBOUND_QUARANTINED) == 1
    assert "Résultats" not in str(AuditEvent.objects.values_list("detail", flat=True))

    mailbox = make_mailbox("future")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_verified.post(
            reverse("admin:gateway_inboundmessage_changelist"),
            {"action": "replay", "_selected_action": [inbound.pk]},
        )
    assert response.status_code == 302
    inbound.refresh_from_db()
    assert inbound.status == InboundStatus.INGESTED
    assert Message.objects.get(mailbox=mailbox).text_body.startswith("Résultats joints.")
    replayed = AuditEvent.objects.get(event=Event.INBOUND_REPLAYED)
    assert replayed.actor == admin_client_verified.user
    assert replayed.detail["previous_attempts"] == 3


def test_replay_ignores_messages_not_in_quarantine(
    admin_client_verified, django_capture_on_commit_callbacks
):
    mailbox = make_mailbox("cardio")
    with django_capture_on_commit_callbacks(execute=True):
        inbound = accept(message_bytes(to=mailbox.address), [mailbox.address])
    response = admin_client_verified.post(
        reverse("admin:gateway_inboundmessage_changelist"),
        {"action": "replay", "_selected_action": [inbound.pk]},
        follow=True,
    )
    assert "seuls les messages en quarantaine se rejouent" in response.content.decode()
    assert events(Event.INBOUND_REPLAYED) == 0
    assert Message.objects.filter(mailbox=mailbox).count() == 1


def test_a_failed_attempt_waits_with_backoff_before_the_next(settings):
    settings.GATEWAY_INGEST_RETRY_BASE = 30
    raw = message_bytes(to=f"gone@{LOCAL_DOMAIN}")
    inbound = accept(raw, [f"gone@{LOCAL_DOMAIN}"])  # on_commit not run: no task yet
    before = timezone.now()
    with pytest.raises(services.IngestionDeferred) as deferred:
        services.inbound_ingest(inbound_id=inbound.pk)
    assert deferred.value.retry_in == 30
    with pytest.raises(services.IngestionDeferred) as deferred:
        services.inbound_ingest(inbound_id=inbound.pk)
    assert deferred.value.retry_in == 60
    inbound.refresh_from_db()
    assert inbound.attempts == 2
    assert inbound.next_attempt_at >= before + timedelta(seconds=60)
    assert inbound.lease_until is None


def test_a_message_held_by_another_worker_is_left_alone():
    mailbox = make_mailbox("cardio")
    inbound = accept(message_bytes(to=mailbox.address), [mailbox.address])
    InboundMessage.objects.filter(pk=inbound.pk).update(
        lease_until=timezone.now() + timedelta(minutes=5)
    )
    assert services.inbound_ingest(inbound_id=inbound.pk) == InboundStatus.ACCEPTED
    assert not Message.objects.exists()


def test_ingesting_twice_files_once():
    mailbox = make_mailbox("cardio")
    inbound = accept(message_bytes(to=mailbox.address), [mailbox.address])
    assert services.inbound_ingest(inbound_id=inbound.pk) == InboundStatus.INGESTED
    # A redelivered task (worker killed after the commit, before the ack), even with the row
    # put back to "accepted", does not file a second copy.
    InboundMessage.objects.filter(pk=inbound.pk).update(status=InboundStatus.ACCEPTED)
    assert services.inbound_ingest(inbound_id=inbound.pk) == InboundStatus.INGESTED
    assert Message.objects.filter(mailbox=mailbox).count() == 1
    assert InboundDelivery.objects.count() == 1


def test_sweeper_enqueues_what_a_lost_broker_message_left_behind(
    django_capture_on_commit_callbacks,
):
    mailbox = make_mailbox("cardio")
    late = accept(message_bytes(to=mailbox.address, subject="En retard"), [mailbox.address])
    fresh = accept(message_bytes(to=mailbox.address, subject="Récent"), [mailbox.address])
    # Neither task reached a worker (callbacks not run: the broker lost them).
    InboundMessage.objects.filter(pk=late.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=2)
    )
    out = io.StringIO()
    call_command("gateway_sweep", stdout=out)
    assert out.getvalue().startswith("1 message")
    late.refresh_from_db()
    fresh.refresh_from_db()
    assert late.status == InboundStatus.INGESTED
    assert fresh.status == InboundStatus.ACCEPTED  # not late yet: its own task may still come
    assert list(Message.objects.values_list("subject", flat=True)) == ["En retard"]


def test_accept_failure_after_storing_removes_the_ciphertext(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path},
        },
    }
    envelope = services.InboundEnvelope(mail_from=SENDER, rcpt_tos=(object(),))  # not JSON
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(TypeError):
        services.inbound_accept(raw=b"Subject: x\r\n\r\nx\r\n", envelope=envelope)
    assert not InboundMessage.objects.exists()
    assert not StoredBlob.objects.exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_received_header_is_the_same_on_every_attempt():
    mailbox = make_mailbox("cardio")
    inbound = accept(message_bytes(to=mailbox.address), [mailbox.address])
    assert services.trace_header(inbound) == services.trace_header(
        InboundMessage.objects.get(pk=inbound.pk)
    )
    assert services.trace_header(inbound).startswith(b"Received: from unknown ([::1])")


def test_admin_lists_inbound_mail_without_content(admin_client_verified):
    mailbox = make_mailbox("cardio")
    accept(
        message_bytes(to=mailbox.address, subject="Sujet confidentiel", body="Diagnostic secret"),
        [mailbox.address],
    )
    inbound = InboundMessage.objects.get()
    listing = admin_client_verified.get(
        reverse("admin:gateway_inboundmessage_changelist"), {"status__exact": "accepted"}
    )
    detail = admin_client_verified.get(
        reverse("admin:gateway_inboundmessage_change", args=[inbound.pk])
    )
    for page in (listing, detail):
        assert page.status_code == 200
        html = page.content.decode()
        assert "Sujet confidentiel" not in html
        assert "Diagnostic secret" not in html
    assert inbound.message_id in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()
    for query in (inbound.message_id, "not-a-number"):
        found = admin_client_verified.get(
            reverse("admin:gateway_inboundmessage_changelist"), {"q": query}
        )
        assert found.status_code == 200


@pytest.fixture
def admin_client_verified(client):
    from tests.conftest import make_user

    staff = make_user(staff=True)
    login(client, staff)
    client.user = staff
    return client


def test_a_group_is_enqueued_once_and_each_message_filed_on_its_own(settings):
    """The gateway enqueues one task per group commit; a message of the group that fails goes
    on alone (retries, then quarantine) and the others are filed."""
    from apps.gateway import tasks

    settings.GATEWAY_INGEST_MAX_ATTEMPTS = 2
    mailbox = make_mailbox("cardio")
    envelope = services.InboundEnvelope(mail_from=SENDER, rcpt_tos=(mailbox.address,))
    gone = services.InboundEnvelope(mail_from=SENDER, rcpt_tos=(f"parti@{LOCAL_DOMAIN}",))
    prepared = [
        services.inbound_prepare(raw=raw, envelope=env)
        for raw, env in [
            (message_bytes(to=mailbox.address, subject="Un"), envelope),
            (message_bytes(to=f"parti@{LOCAL_DOMAIN}", subject="Perdu"), gone),
            (message_bytes(to=mailbox.address, subject="Deux"), envelope),
        ]
    ]
    rows = services.inbound_commit(rows=prepared, enqueue=False)
    sent = []
    original = tasks.ingest_group.delay
    tasks.ingest_group.delay = lambda ids: sent.append(ids) or original(ids)
    try:
        services.inbound_enqueue(inbound_ids=[row.pk for row in rows])
    finally:
        tasks.ingest_group.delay = original

    assert sent == [[row.pk for row in rows]]
    statuses = dict(InboundMessage.objects.values_list("pk", "status"))
    assert [statuses[row.pk] for row in rows] == [
        InboundStatus.INGESTED, InboundStatus.QUARANTINED, InboundStatus.INGESTED,
    ]  # fmt: skip
    assert sorted(Message.objects.filter(mailbox=mailbox).values_list("subject", flat=True)) == [
        "Deux", "Un",
    ]  # fmt: skip
