"""A peer that answers 421 (at connect, after MAIL), 4xx, 5xx, or drops the connection after the
data without a reply. Delivery runs attempt after attempt (the rows are made due at once instead
of waiting for the back-off) until every row is final: delivered, or failed with a
delivery-status report in the sender's inbox; the peer's received set has no loss."""

import pytest
from django.utils import timezone

from apps.delivery import services
from apps.delivery.models import OPEN_STATUSES, OutboundDelivery
from apps.mailbox.models import Mailbox
from apps.mailbox.services import Address, message_send
from apps.trustlist.dn import dn_canonical
from apps.trustlist.models import TrustedEntry, TrustList
from tests.conftest import make_user
from tests.pki import PEER_DN

from .agent import outbox_state
from .conftest import PEER_DOMAIN, tally

DOCTOR = f"jacques.bideault@{PEER_DOMAIN}"
OTHER = f"marie.curie@{PEER_DOMAIN}"
ROUNDS = 6


@pytest.fixture
def sender(db, settings, pki, sink):
    settings.DELIVERY_ROUTES = f"{PEER_DOMAIN}=127.0.0.1:{sink.port}"
    settings.DELIVERY_RELAY_HOST = ""
    settings.DELIVERY_CA_BUNDLE = str(pki.ca)
    settings.DELIVERY_CLIENT_CERT, settings.DELIVERY_CLIENT_KEY = map(str, pki.ours)
    settings.DELIVERY_EHLO_NAME = "mx.mssweb.test"
    settings.DELIVERY_SMTP_TIMEOUT = 3
    trust_list = TrustList.objects.create(status=TrustList.Status.ACTIVE, entry_count=1)
    TrustedEntry.objects.create(
        trust_list=trust_list, domain=PEER_DOMAIN, dn=PEER_DN, dn_canonical=dn_canonical(PEER_DN)
    )
    return make_user(first_name="Alice", last_name="Martin")


def send(user, count: int = 2) -> list[str]:
    mailbox = Mailbox.objects.get(owner=user)
    return [
        message_send(
            user=user, mailbox=mailbox, to=[Address("", DOCTOR), Address("", OTHER)],
            subject=f"Demande d'avis {n}", text="Bonjour,\nun avis ?\n",
        ).message_id
        for n in range(count)
    ]  # fmt: skip


def run_until_final(*, give_up_after: int = ROUNDS) -> int:
    """Attempt after attempt, each row made due at once; after ``give_up_after`` rounds the
    rows still open reach the end of their lifetime. Returns the rounds run."""
    for round_ in range(1, ROUNDS + 2):
        open_rows = OutboundDelivery.objects.filter(status__in=OPEN_STATUSES)
        if not open_rows.exists():
            return round_ - 1
        now = timezone.now()
        changes = {"next_attempt_at": now}
        if round_ > give_up_after:
            changes["expires_at"] = now
        open_rows.update(**changes)
        while services.deliveries_run(now=now):
            pass
    raise AssertionError("rows still open after every round")


CASES = {
    # name: (script, duplicates allowed, rows expected to fail)
    "421-at-connect-twice": ({"connect": ["421 4.3.2 Service not available"] * 2}, 0, 0),
    "421-after-mail": ({"mail": ["421 4.3.2 Shutting down"]}, 0, 0),
    "451-at-rcpt": ({"rcpt": ["451 4.3.0 Try again"] * 3}, 0, 0),
    "550-for-one-of-two": ({f"rcpt__{OTHER}": "550 5.1.1 User unknown"}, 0, 2),
    "554-after-data": ({"data": "554 5.6.0 Content rejected"}, 0, 4),
    "drop-after-data": ({"data": ["drop"]}, 2, 0),
    "451-until-lifetime-ends": ({"rcpt": "451 4.3.0 Try again"}, 0, 4),
}


@pytest.mark.parametrize("case", CASES)
def test_every_row_ends_delivered_or_failed_with_a_report(sender, sink, case):
    script, duplicates_allowed, failures = CASES[case]
    sink.handler.script.set(**script)
    msgids = send(sender)
    rounds = run_until_final(give_up_after=3)
    state = outbox_state()
    result = tally(f"peer {case} ({rounds} rounds)", state, sink.received)
    assert not result.problems, result.problems
    assert result.accepted == 4
    assert result.lost == 0
    assert result.failed_reported == failures
    assert result.delivered == 4 - failures
    assert result.duplicates <= duplicates_allowed
    delivered = {(r["msgid"], r["recipient"]) for r in state["rows"] if r["status"] == "delivered"}
    assert delivered <= set(sink.received)
    assert {m for m, _r in sink.received} <= set(msgids)
    if case == "451-until-lifetime-ends":
        assert {r["status"] for r in state["reports"]} == {"4.3.0"}
