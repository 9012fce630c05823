"""New-mail alerts end to end: a real Web Push request to a push service on loopback, decrypted
with the keys the test made like a browser, and the preferences that shape it."""

import json
from datetime import time, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.accounts.models import Domain
from apps.mailbox.models import Mailbox, MailboxKind, MailboxMembership, Message
from apps.mailbox.services import Address, message_deliver_raw, message_send
from apps.notifications import services
from apps.notifications.conf import vapid_keys
from apps.notifications.models import (
    DigestChoice,
    EventChoice,
    MessageNotice,
    NotificationPreference,
    PushContent,
    PushSubscription,
)
from tests.conftest import DOMAIN
from tests.conftest import mailbox_of as box
from tests.notifications.pushservice import verify_vapid

pytestmark = pytest.mark.django_db

SUBJECT = "IRM du genou droit de M. Jean Dupont"
BODY = "Lésion du ménisque interne, kyste poplité. Patient né le 12/03/1961."


def deliver(sender, recipient, *, urgent: bool = False, subject: str = SUBJECT) -> Message:
    """Alice writes to Bob (local delivery), then the lead's hook alerts Bob."""
    message_send(
        user=sender,
        mailbox=box(sender),
        to=[Address("", recipient.email)],
        subject=subject,
        text=BODY,
        urgent=urgent,
    )
    copy = Message.objects.filter(mailbox=box(recipient)).latest("id")
    services.new_mail_notify(message_ids=[copy.pk])
    return copy


def payload_of(received, keys) -> dict:
    return json.loads(keys.decrypt(received.body))


def set_preference(user, **fields) -> NotificationPreference:
    preference = NotificationPreference.objects.get_or_create(user=user)[0]
    for name, value in fields.items():
        setattr(preference, name, value)
    preference.save()
    return preference


def test_new_message_push_is_encrypted_signed_and_carries_no_health_data(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    _subscription, keys = subscribe(bob, "bob-phone")
    with django_capture_on_commit_callbacks(execute=True):
        message = deliver(alice, bob)

    [received] = push_service.to("bob-phone")
    assert received.headers["content-encoding"] == "aes128gcm"
    assert received.headers["urgency"] == "normal"
    assert int(received.headers["ttl"]) > 0
    claims = verify_vapid(received.headers["authorization"], audience=push_service.origin)
    assert claims["k"] == vapid_keys().public_key
    assert claims["sub"] == vapid_keys().subject

    plaintext = keys.decrypt(received.body).decode()
    payload = json.loads(plaintext)
    assert payload["body"] == f"Nouveau message sécurisé de {box(alice).display_name}"
    assert payload["url"] == f"/messagerie/message/{message.pk}/"
    assert payload["urgent"] is False
    assert payload["unread"] == 1
    for secret in ("IRM", "genou", "Dupont", "ménisque", "1961", SUBJECT, BODY):
        assert secret not in plaintext
        assert secret.encode() not in received.body  # encrypted on the wire
    assert PushSubscription.objects.get(user=bob).last_success_at is not None


def test_count_only_preference_hides_the_sender(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    set_preference(bob, push_content=PushContent.COUNT)
    _s, keys = subscribe(bob, "bob-phone")
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob)
    payload = payload_of(push_service.to("bob-phone")[0], keys)
    assert payload["body"] == "1 nouveau message sécurisé"
    assert "Alice" not in json.dumps(payload)
    assert "Martin" not in json.dumps(payload)


def test_every_device_of_the_recipient_is_alerted_and_nobody_else(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    _s1, phone = subscribe(bob, "bob-phone")
    _s2, tablet = subscribe(bob, "bob-tablet")
    subscribe(alice, "alice-phone")
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob)
    assert payload_of(push_service.to("bob-phone")[0], phone)["body"].startswith("Nouveau")
    assert payload_of(push_service.to("bob-tablet")[0], tablet)["body"].startswith("Nouveau")
    assert push_service.to("alice-phone") == []  # the sender's own copy is not news


@pytest.mark.parametrize("status", [404, 410])
def test_a_subscription_the_push_service_forgot_is_removed(
    status, alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    subscribe(bob, "bob-old-phone")
    push_service.status["/push/bob-old-phone"] = status
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob)
    assert len(push_service.to("bob-old-phone")) == 1
    assert not PushSubscription.objects.filter(user=bob).exists()


def test_a_failing_push_service_is_retried_and_the_subscription_kept(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    subscribe(bob, "bob-phone")
    push_service.status["/push/bob-phone"] = 503
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob)
    # Eager Celery runs the retries at once: the first try and max_retries=6 more.
    assert len(push_service.to("bob-phone")) == 7
    assert PushSubscription.objects.filter(user=bob).exists()


def test_urgent_only_preference_skips_ordinary_mail(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    set_preference(bob, events=EventChoice.URGENT)
    _s, keys = subscribe(bob, "bob-phone")
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob)
    assert push_service.to("bob-phone") == []
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob, urgent=True)
    [received] = push_service.to("bob-phone")
    assert received.headers["urgency"] == "high"
    payload = payload_of(received, keys)
    assert payload["body"] == f"Message urgent de {box(alice).display_name}"
    assert payload["urgent"] is True


def test_no_notification_preference_sends_nothing(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks, sms_outbox
):
    set_preference(bob, events=EventChoice.NONE, sms_enabled=True, phone="+33612345678")
    subscribe(bob, "bob-phone")
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob, urgent=True)
    assert push_service.received == []
    assert sms_outbox == []


def _quiet_around(now):
    local = timezone.localtime(now)
    start = (local - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    return start, end


def test_quiet_hours_hold_ordinary_mail_until_they_end_but_not_urgent_mail(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    now = timezone.now()
    start, end = _quiet_around(now)
    set_preference(bob, quiet_start=start, quiet_end=end)
    _s, keys = subscribe(bob, "bob-phone")
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob)
    assert push_service.to("bob-phone") == []
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob, urgent=True)
    assert payload_of(push_service.to("bob-phone")[0], keys)["urgent"] is True

    with django_capture_on_commit_callbacks(execute=True):
        assert services.digest_flush(now=now) == 0  # still quiet
    assert len(push_service.to("bob-phone")) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert services.digest_flush(now=now + timedelta(hours=2)) == 1
    later = payload_of(push_service.to("bob-phone")[1], keys)
    assert later["body"] == "1 nouveau message sécurisé"
    assert later["urgent"] is False


def test_quiet_hours_over_midnight():
    preference = NotificationPreference(quiet_start=time(21, 0), quiet_end=time(7, 0))
    paris = timezone.get_current_timezone()
    at = lambda h, m=0: timezone.make_aware(  # noqa: E731
        timezone.datetime(2026, 3, 2, h, m), paris
    )
    assert services.in_quiet_hours(preference=preference, now=at(23))
    assert services.in_quiet_hours(preference=preference, now=at(6, 59))
    assert not services.in_quiet_hours(preference=preference, now=at(7))
    assert not services.in_quiet_hours(preference=preference, now=at(20, 59))
    assert not services.in_quiet_hours(preference=NotificationPreference(), now=at(23))


def test_hourly_digest_sends_one_count_per_hour_and_urgent_mail_at_once(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    set_preference(bob, digest=DigestChoice.HOURLY)
    _s, keys = subscribe(bob, "bob-phone")
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob)
        deliver(alice, bob)
    assert push_service.to("bob-phone") == []
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob, urgent=True)
    assert payload_of(push_service.to("bob-phone")[0], keys)["urgent"] is True

    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.digest_flush(now=now) == 1
    digest = payload_of(push_service.to("bob-phone")[1], keys)
    assert digest["body"] == "2 nouveaux messages sécurisés"
    assert digest["url"] == f"/messagerie/{box(bob).pk}/inbox/"

    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.digest_flush(now=now + timedelta(minutes=10)) == 0
        assert services.digest_flush(now=now + timedelta(minutes=61)) == 1
    assert payload_of(push_service.to("bob-phone")[2], keys)["body"] == "1 nouveau message sécurisé"


def test_a_message_read_before_the_digest_is_not_announced(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    set_preference(bob, digest=DigestChoice.DAILY)
    subscribe(bob, "bob-phone")
    with django_capture_on_commit_callbacks(execute=True):
        message = deliver(alice, bob)
    Message.objects.filter(pk=message.pk).update(is_read=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.digest_flush() == 0
    assert push_service.received == []
    assert not MessageNotice.objects.filter(status="held").exists()


def test_urgent_mail_sends_the_opted_in_email_and_sms_notices_without_content(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks, sms_outbox
):
    set_preference(
        bob, email_enabled=True, personal_email="bob.durand@example.org",
        sms_enabled=True, phone="+33612345678",
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob)
    assert mail.outbox == []  # ordinary mail: push only
    assert sms_outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        deliver(alice, bob, urgent=True)
    [email] = mail.outbox
    assert email.to == ["bob.durand@example.org"]
    assert "Connectez-vous" in email.body
    [(phone, text)] = sms_outbox
    assert phone == "+33612345678"
    assert "Connectez-vous" in text
    for leaked in (email.subject, email.body, text):
        for secret in ("IRM", "genou", "Dupont", "ménisque", "Alice", "Martin"):
            assert secret not in leaked


def test_members_of_a_shared_mailbox_are_alerted_of_mail_filed_by_the_gateway(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    shared = Mailbox.objects.create(
        address=f"secretariat@{DOMAIN}", kind=MailboxKind.ORGANISATIONAL,
        domain=Domain.objects.get(name=DOMAIN), display_name="Secrétariat",
    )  # fmt: skip
    for user in (alice, bob):
        MailboxMembership.objects.create(mailbox=shared, user=user)
    _s1, alice_keys = subscribe(alice, "alice-phone")
    _s2, bob_keys = subscribe(bob, "bob-phone")
    raw = (
        "From: Dr Paul Roux <paul.roux@autre-operateur.mssante.fr>\r\n"
        f"To: {shared.address}\r\nSubject: {SUBJECT}\r\nImportance: high\r\nX-Priority: 1\r\n"
        "Message-ID: <abc@autre-operateur.mssante.fr>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{BODY}\r\n"
    ).encode()
    with django_capture_on_commit_callbacks(execute=True):
        message = message_deliver_raw(mailbox=shared, raw=raw)
        services.new_mail_notify(message_ids=[message.pk])
    assert message.is_urgent  # the other operator's urgent marker is honoured
    for name, keys in (("alice-phone", alice_keys), ("bob-phone", bob_keys)):
        payload = payload_of(push_service.to(name)[0], keys)
        assert payload["body"] == "Message urgent de Dr Paul Roux"
        assert payload["url"] == f"/messagerie/message/{message.pk}/"


def test_a_patient_sender_is_never_named(
    bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    _s, keys = subscribe(bob, "bob-phone")
    raw = (
        "From: Jean Dupont <162018885045327@patient.mssante.fr>\r\n"
        f"To: {bob.email}\r\nSubject: Question\r\n"
        "Message-ID: <p1@patient.mssante.fr>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour docteur\r\n"
    ).encode()
    with django_capture_on_commit_callbacks(execute=True):
        message = message_deliver_raw(mailbox=box(bob), raw=raw)
        services.new_mail_notify(message_ids=[message.pk])
    plaintext = keys.decrypt(push_service.to("bob-phone")[0].body).decode()
    assert json.loads(plaintext)["body"] == "1 nouveau message sécurisé"
    assert "Dupont" not in plaintext
    assert "162018885045327" not in plaintext


def test_notifying_twice_alerts_once(
    alice, bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    subscribe(bob, "bob-phone")
    with django_capture_on_commit_callbacks(execute=True):
        message = deliver(alice, bob)
        services.new_mail_notify(message_ids=[message.pk])
    assert len(push_service.to("bob-phone")) == 1


def test_a_test_notification_reaches_every_device(
    bob, subscribe, push_service, django_capture_on_commit_callbacks
):
    _s, keys = subscribe(bob, "bob-phone")
    assert services.push_test_send(user=bob) == 1
    assert payload_of(push_service.to("bob-phone")[0], keys)["body"].startswith(
        "Notification de test"
    )
