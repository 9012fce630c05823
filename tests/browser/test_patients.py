"""Writing to a patient (Mon espace santé) in a real browser, on a desktop and a 360 px phone:
the Patient block behind "Écrire à un patient", the address built from the INS, the message
out to a real TLS peer standing for the patients' operator, and the patient badge (name and
INS) instead of the raw address in the Sent list and the conversation. Without JavaScript the
block is a visible fieldset."""

import time

import pytest
from playwright.sync_api import Browser, Page, expect

from apps.delivery.models import DeliveryStatus, OutboundDelivery
from apps.mailbox.models import Message, PatientRecipient
from apps.trustlist.dn import dn_canonical
from apps.trustlist.models import TrustedEntry, TrustList
from tests.browser.conftest import DESKTOP
from tests.browser.test_login_flows import assert_fits_width, confirmed_device, log_in
from tests.conftest import make_user, totp_code
from tests.delivery.conftest import start_peer, trusted_peer  # noqa: F401 - fixtures
from tests.pki import PEER_DN

pytestmark = pytest.mark.browser

INS = "162018885045327"
ADDRESS = f"{INS}@patient.mssante.fr"


@pytest.fixture
def patient_peer(start_peer, settings):  # noqa: F811 - the imported fixture
    """A real aiosmtpd peer with STARTTLS for Mon espace santé, listed in the trust list."""
    peer = start_peer()
    TrustedEntry.objects.create(
        trust_list=TrustList.objects.get(status=TrustList.Status.ACTIVE),
        domain="patient.mssante.fr", dn=PEER_DN, dn_canonical=dn_canonical(PEER_DN),
    )  # fmt: skip
    settings.DELIVERY_ROUTES = f"patient.mssante.fr=127.0.0.1:{peer.port}"
    return peer


def wait_for(condition, *, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_dentist_writes_to_a_patient_and_sees_the_patient_badge(
    page: Page, viewport, screenshot, patient_peer
):
    alice = make_user(first_name="Alice", last_name="Martin")
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto("/messagerie/ecrire/")
    block = page.get_by_role("group", name="Patient (Mon espace santé)")
    expect(block).to_be_hidden()  # folded behind the toggle
    toggle = page.get_by_role("button", name="Écrire à un patient")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(block).to_be_visible()
    expect(page.get_by_label("INS du patient", exact=True)).to_be_focused()
    page.get_by_label("INS du patient", exact=True).fill("1 62 01 88 850 453 27")
    expect(block.locator(".patient-address")).to_have_text(f"Adresse du patient : {ADDRESS}")
    page.get_by_label("Nom de naissance", exact=True).fill("Dupont")
    page.get_by_label("Prénoms", exact=True).fill("Marie Louise")
    page.get_by_label("Date de naissance", exact=True).fill("1962-01-15")
    page.get_by_label("Le patient ne peut pas répondre").check()
    page.get_by_label("Objet", exact=True).fill("Votre ordonnance")
    page.locator("textarea[name=text]").fill("Bonjour,\nvoici votre ordonnance.")
    assert_fits_width(page, viewport)
    screenshot(page, "patient-compose")
    page.get_by_role("button", name="Envoyer", exact=True).click()

    expect(page.get_by_text("Message envoyé.")).to_be_visible()
    row = page.locator(".message-row").first
    badge = row.locator(".badge-patient")
    expect(badge).to_be_visible()
    expect(badge).to_contain_text("DUPONT Marie Louise")
    expect(badge).to_contain_text(f"INS {INS}")
    expect(row).not_to_contain_text(ADDRESS)
    assert_fits_width(page, viewport)
    screenshot(page, "patient-sent-list")

    sent = Message.objects.get(patient__isnull=False)
    assert PatientRecipient.objects.get(message=sent).no_reply
    wait_for(lambda: OutboundDelivery.objects.get(message=sent).status != DeliveryStatus.PENDING)
    assert OutboundDelivery.objects.get(message=sent).status == DeliveryStatus.DELIVERED
    [received] = patient_peer.received
    assert received.rcpt_tos == [ADDRESS]
    assert b"X-MSS-MES: FIN" in received.content

    row.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Votre ordonnance")
    badge = page.locator(".mail-head .badge-patient")
    expect(badge).to_be_visible()
    expect(badge).to_contain_text("DUPONT Marie Louise")
    assert_fits_width(page, viewport)
    screenshot(page, "patient-conversation")


@pytest.mark.parametrize("viewport", [DESKTOP], indirect=True, ids=["desktop"])
def test_without_javascript_the_patient_block_is_a_visible_fieldset(
    browser: Browser, live_server, viewport, allow_audit_flush, screenshot
):
    alice = make_user(first_name="Alice", last_name="Martin")
    context = browser.new_context(
        base_url=live_server.url, locale="fr-FR", java_script_enabled=False,
        **viewport.context_args,
    )  # fmt: skip
    try:
        page = context.new_page()
        log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
        page.goto("/messagerie/ecrire/")
        expect(page.get_by_role("group", name="Patient (Mon espace santé)")).to_be_visible()
        expect(page.get_by_role("button", name="Écrire à un patient")).to_be_hidden()
        page.get_by_label("INS du patient", exact=True).fill("162018885045328")  # wrong key
        page.get_by_label("Nom de naissance", exact=True).fill("Dupont")
        page.get_by_label("Prénoms", exact=True).fill("Marie")
        page.get_by_label("Date de naissance", exact=True).fill("1962-01-15")
        page.get_by_role("button", name="Envoyer", exact=True).click()
        expect(page.get_by_text("La clé de l'INS")).to_be_visible()
        screenshot(page, "patient-compose-nojs")
        assert not Message.objects.exists()
    finally:
        context.close()
