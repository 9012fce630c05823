"""'Mon activité' and a message's 'Traçabilité' in a real browser, on a desktop and a phone."""

import contextlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.accounts import services as account_services
from apps.accounts.services import InvalidCredentials
from apps.audit.exports import export_verify
from apps.core.request_meta import RequestMeta
from apps.delivery import services as delivery_services
from apps.delivery.models import DeliveryStatus, OutboundDelivery
from apps.delivery.receipts import receipt_absorb
from apps.ingestion.parse import parse_message
from apps.mailbox.models import Mailbox
from apps.mailbox.services import Address, message_send
from tests.audit.test_trace import DOCTOR, mdn_about
from tests.browser.test_login_flows import assert_fits_width, confirmed_device, log_in
from tests.conftest import PASSWORD, make_user, totp_code
from tests.delivery import conftest as delivery_fixtures
from tests.delivery.conftest import Behaviour

pytestmark = pytest.mark.browser

# The delivery tests' real SMTP peer (aiosmtpd, STARTTLS, test PKI) and trust list.
start_peer = delivery_fixtures.start_peer
trusted_peer = delivery_fixtures.trusted_peer

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1"
)
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:135.0) Gecko/20100101 Firefox/135.0"


def password_attempt(user, *, ip: str, ua: str, password: str = PASSWORD) -> None:
    with contextlib.suppress(InvalidCredentials):
        account_services.login_password_check(
            email=user.email, password=password, meta=RequestMeta(ip=ip, user_agent=ua)
        )


def test_my_activity_highlights_unusual_logins_and_filters(new_page, viewport, screenshot):
    alice = make_user(first_name="Alice", last_name="Martin")
    password_attempt(alice, ip="192.0.2.10", ua=WINDOWS)
    password_attempt(alice, ip="192.0.2.10", ua=WINDOWS)
    for _ in range(3):
        password_attempt(alice, ip="203.0.113.66", ua=IPHONE, password="mauvais")
    password_attempt(alice, ip="203.0.113.66", ua=IPHONE)

    page = new_page()
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto("/compte/securite/")
    page.get_by_role("link", name="Voir mon activité").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mon activité")
    suspicious = page.locator("li.activity-suspicious")
    expect(suspicious.first).to_be_visible()
    # The iPhone, and this very browser (headless Chromium on Linux): both never seen before.
    new_devices = suspicious.filter(has_text="Nouvel appareil")
    expect(new_devices).to_have_count(2)
    expect(new_devices.filter(has_text="Safari sur iPhone")).to_have_count(1)
    expect(suspicious.filter(has_text="Plusieurs échecs à la suite")).to_have_count(3)
    expect(page.locator("li.activity").filter(has_text="Safari sur iPhone").first).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("LOGIN_")
    assert_fits_width(page, viewport)
    screenshot(page, "activity")

    page.get_by_label("Type").select_option("securite")
    page.get_by_role("button", name="Filtrer").click()
    expect(page).to_have_url(
        "/compte/activite/?type=securite&date_from=&date_to=", ignore_case=True
    )
    expect(page.locator("li.activity").filter(has_text="Échec de connexion")).to_have_count(0)
    assert_fits_width(page, viewport)


def _send_and_read(alice, start_peer):
    peer = start_peer(Behaviour(rcpt={DOCTOR: "450 4.2.1 Mailbox busy, try later"}))
    sent = message_send(
        user=alice, mailbox=Mailbox.objects.get(owner=alice), to=[Address("", DOCTOR)],
        subject="Compte rendu opératoire", text="Bonjour.\n", read_receipt=True,
    )  # fmt: skip
    row = OutboundDelivery.objects.get(message=sent)
    assert row.status == DeliveryStatus.DEFERRED, row.reason
    peer.handler.behaviour.rcpt = {}
    delivery_services.deliveries_run(now=row.next_attempt_at + timedelta(minutes=1))
    raw = mdn_about(sent)
    assert receipt_absorb(mailbox=Mailbox.objects.get(owner=alice), parsed=parse_message(raw),
                          raw=raw)  # fmt: skip
    return sent


def test_message_trace_shows_each_step_and_exports_a_verifiable_file(
    new_page, viewport, screenshot, start_peer
):
    alice = make_user(first_name="Alice", last_name="Martin")
    sent = _send_and_read(alice, start_peer)

    page = new_page()
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto(f"/messagerie/message/{sent.pk}/")
    page.get_by_role("link", name="Traçabilité").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Traçabilité")
    recipients = page.locator(".trace-recipients li")
    expect(recipients).to_have_count(1)
    expect(recipients).to_contain_text(DOCTOR)
    expect(recipients).to_contain_text("autre opérateur de l'espace de confiance")
    expect(recipients).to_contain_text("2 tentatives")
    steps = page.locator(".trace-steps > li")
    expect(steps).to_have_count(5)
    expect(steps.nth(1)).to_contain_text("Envoyé par Alice Martin")
    expect(steps.nth(2)).to_contain_text("450 4.2.1")
    expect(steps.nth(3)).to_contain_text("Remis au serveur du destinataire")
    expect(steps.nth(4)).to_contain_text(f"Lu par {DOCTOR}")
    assert_fits_width(page, viewport)
    screenshot(page, "message-trace")

    with page.expect_download() as json_download:
        page.get_by_role("link", name="Exporter en JSON (vérifiable)").click()
    data = json.loads(Path(json_download.value.path()).read_bytes())
    check = export_verify(data)
    assert check.ok, check.problems
    with page.expect_download() as pdf_download:
        page.get_by_role("link", name="Exporter en PDF").click()
    assert Path(pdf_download.value.path()).read_bytes()[:4] == b"%PDF"
