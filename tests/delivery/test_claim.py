"""Concurrent workers take disjoint rows (PostgreSQL: ``select_for_update(skip_locked=True)``)."""

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.delivery import services
from apps.delivery.models import OutboundDelivery
from apps.mailbox.models import Mailbox
from apps.mailbox.services import Address, message_send
from tests.conftest import make_user

from .conftest import PEER_DOMAIN, free_port

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_audit_flush"),
]


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks need PostgreSQL (SQLite locks the whole database); CI runs this on it",
)
def test_a_row_locked_by_one_claimer_is_skipped_by_another(trusted_peer, settings):
    settings.DELIVERY_ROUTES = f"{PEER_DOMAIN}=127.0.0.1:{free_port()}"  # nobody listens
    alice = make_user()
    mailbox = Mailbox.objects.get(owner=alice)
    for n in range(2):
        message_send(
            user=alice, mailbox=mailbox, to=[Address("", f"doctor{n}@{PEER_DOMAIN}")],
            subject="Avis", text="Bonjour.\n",
        )  # fmt: skip
    first, second = OutboundDelivery.objects.order_by("pk")
    # Delivery tasks ran on commit against no peer: make both rows open and due again.
    OutboundDelivery.objects.update(
        status="pending", lease_until=None, next_attempt_at=timezone.now()
    )

    locked, release = threading.Event(), threading.Event()

    def other_worker():
        try:
            with transaction.atomic():
                # Another worker in the middle of its claim holds the first row's lock.
                list(OutboundDelivery.objects.select_for_update().filter(pk=first.pk))
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert locked.wait(10)
        claimed = services.deliveries_claim(now=timezone.now())
        assert [row.pk for row in claimed] == [second.pk]  # no wait, no double claim
    finally:
        release.set()
        thread.join()
    # Its lease now keeps it from a second claimer, even with the lock gone.
    again = services.deliveries_claim(now=timezone.now())
    assert [row.pk for row in again] == [first.pk]
    assert services.deliveries_claim(now=timezone.now()) == []
