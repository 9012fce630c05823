"""The sender watches a message to another operator go from "en attente" to "remis" to "lu", in
a real browser (desktop and phone).

The other operator is a real aiosmtpd server with STARTTLS and the peer certificate of the test
PKI, listed in the trust list; it holds the end of data until the test lets it answer, so the
delivery is seen in progress. Its read receipt then comes back through our real gateway.
"""

import asyncio
import re
import smtplib
import threading
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from apps.delivery.models import DeliveryStatus, OutboundDelivery
from apps.delivery.reports import build_read_receipt
from apps.mailbox.models import FolderKind, Mailbox, Message
from tests.browser.test_login_flows import assert_fits_width, confirmed_device, log_in
from tests.conftest import make_user, totp_code
from tests.delivery.conftest import (
    PEER_DOMAIN,
    Behaviour,
    Handler,
    PeerController,
    free_port,
    server_context,
    trusted_peer,  # noqa: F401 - the trust list names the peer's DN for PEER_DOMAIN
)
from tests.gateway.conftest import client_context, gateway  # noqa: F401 - our gateway

pytestmark = pytest.mark.browser

DOCTOR = f"jacques.bideault@{PEER_DOMAIN}"
HOLD_SECONDS = 30


class HeldHandler(Handler):
    """Accepts the mail, but answers the end of data only once ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(Behaviour())
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.arrived.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.release.wait, HOLD_SECONDS)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def held_peer(pki, settings, trusted_peer):  # noqa: F811
    handler = HeldHandler()
    port = free_port()
    controller = PeerController(
        handler, hostname="127.0.0.1", port=port, server_hostname="mx.peer.test",
        tls_context=server_context(pki.peer),
    )  # fmt: skip
    controller.start()
    settings.DELIVERY_ROUTES = f"{PEER_DOMAIN}=127.0.0.1:{port}"
    settings.DELIVERY_RELAY_HOST = ""
    settings.DELIVERY_CA_BUNDLE = str(pki.ca)
    settings.DELIVERY_CLIENT_CERT, settings.DELIVERY_CLIENT_KEY = map(str, pki.ours)
    settings.DELIVERY_EHLO_NAME = "mx.mssweb.test"
    settings.DELIVERY_SMTP_TIMEOUT = HOLD_SECONDS + 10
    yield handler
    handler.release.set()
    controller.stop(no_assert=True)


def status_item(page: Page):
    return page.locator(".delivery-status li").filter(has_text=DOCTOR)


def test_sender_sees_pending_then_delivered_then_read(
    new_page,
    viewport,
    screenshot,
    held_peer,
    gateway,  # noqa: F811 - the fixture imported above
    pki,
):
    alice = make_user(first_name="Alice", last_name="Martin")
    page = new_page()
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto(f"/messagerie/ecrire/?to={DOCTOR}")
    page.get_by_label("Objet", exact=True).fill("Demande d'avis : Mme X")
    page.get_by_role("textbox", name="Message").fill("Cher confrère,\nqu'en pensez-vous ?")
    page.get_by_label("Demander un accusé de lecture").check()
    # The send request waits for the (eager) delivery, which the peer holds.
    page.get_by_role("button", name="Envoyer").click(no_wait_after=True)
    assert held_peer.arrived.wait(15), "the peer never received the message"

    sent = Message.objects.get(mailbox__owner=alice, folder__kind=FolderKind.SENT)
    viewer = page.context.new_page()
    viewer.goto(f"/messagerie/message/{sent.pk}/")
    expect(status_item(viewer)).to_have_attribute("data-status", "pending")
    expect(status_item(viewer)).to_contain_text("en attente")
    assert_fits_width(viewer, viewport)
    screenshot(viewer, "delivery-pending")

    held_peer.release.set()
    expect(page.get_by_text("Message envoyé.")).to_be_visible(timeout=20_000)
    row = OutboundDelivery.objects.get(message=sent)
    assert row.status == DeliveryStatus.DELIVERED
    viewer.reload()
    expect(status_item(viewer)).to_have_attribute("data-status", "delivered")
    expect(status_item(viewer)).to_contain_text(re.compile(r"remis le \d"))
    assert_fits_width(viewer, viewport)
    screenshot(viewer, "delivery-delivered")

    # The doctor opens it; their operator's read receipt reaches our gateway (null sender).
    (received,) = held_peer.received
    box = Mailbox.objects.get(owner=alice)
    receipt = build_read_receipt(
        from_=("Dr Jacques Bideault", DOCTOR), to=box.address, reporting_ua=PEER_DOMAIN,
        original_raw=received.content, original_message_id=sent.message_id,
        original_subject=sent.subject, original_date=sent.date, automatic=False,
        date=datetime.now(tz=UTC),
    )  # fmt: skip
    server = gateway()
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname="mx.peer.test", timeout=10) as smtp:
        smtp.starttls(context=client_context(pki))
        smtp.sendmail("<>", [box.address], receipt)

    viewer.reload()
    expect(status_item(viewer)).to_have_attribute("data-status", "read")
    expect(status_item(viewer)).to_contain_text(re.compile(r"lu le \d"))
    assert_fits_width(viewer, viewport)
    screenshot(viewer, "delivery-read")
    # The receipt is a status, not a message in the inbox.
    assert not Message.objects.filter(mailbox=box, folder__kind=FolderKind.INBOX).exists()
