"""A dentist writes to a patient's ordinary address with a PDF; the patient reads it through the
secure link in another browser, downloads the PDF and replies; the dentist sees "ouvert" and the
reply. The patient's mail server is a real aiosmtpd server with STARTTLS (tests/external)."""

import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.securelink.models import SecureLink
from tests.browser.test_login_flows import assert_fits_width, confirmed_device, log_in
from tests.conftest import make_user, totp_code
from tests.external.conftest import external_mx  # noqa: F401 - the patient's ordinary MX

pytestmark = pytest.mark.browser

PATIENT = "someone@gmail.example"
SUBJECT = "Devis implant de Mme Lefèvre"
BODY = "Bonjour,\nvoici le devis de l'implant en pièce jointe.\nBien à vous"


def wait_for(predicate, page, timeout_ms: int = 10_000):
    for _ in range(timeout_ms // 100):
        if predicate():
            return
        page.wait_for_timeout(100)
    raise AssertionError("timed out")


def test_patient_reads_downloads_and_replies_through_the_secure_link(
    new_page,
    viewport,
    screenshot,
    tmp_path,
    external_mx,  # noqa: F811
    live_server,
    settings,
):
    settings.SITE_URL = live_server.url
    mx = external_mx()
    dentist = make_user(first_name="Claire", last_name="Morel")
    pdf = tmp_path / "devis-implant.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% devis\n" + bytes(range(256)) * 40 + b"\n%%EOF\n")

    page = new_page()
    log_in(page, viewport, dentist, totp_code(confirmed_device(dentist)))
    page.goto(f"/messagerie/ecrire/?to={PATIENT}")
    page.get_by_label("Objet", exact=True).fill(SUBJECT)
    page.get_by_role("textbox", name="Message").fill(BODY)
    page.get_by_label("Pièces jointes", exact=True).set_input_files(str(pdf))
    page.get_by_role("button", name="Envoyer", exact=True).click()
    confirm = page.get_by_role("button", name="Confirmer l'envoi protégé")
    if confirm.is_visible():
        page.get_by_label("lien sécurisé", exact=True).check()
        confirm.click()
    code_box = page.locator(".external-sent code.secret")
    expect(code_box).to_be_visible()
    code = code_box.inner_text().strip()
    assert re.fullmatch(r"\d{6}", code)
    screenshot(page, "securelink-sender-code")

    # The notice reached the patient's ordinary server: the link, nothing of the message.
    wait_for(lambda: mx.handler.received, page)
    notice = BytesParser(policy=policy.default).parsebytes(mx.handler.received[0].content)
    text = notice.get_body(("plain",)).get_content()
    everything = mx.handler.received[0].content.decode("ascii", "replace") + text
    for secret in ("Devis", "implant", "Lefèvre", "devis-implant", "voici le devis"):
        assert secret not in everything + str(notice["Subject"])
    link_path = re.search(r"https?://\S+?(/lien/[A-Za-z0-9_-]+/)", text).group(1)

    patient = new_page()
    patient.goto(link_path)
    expect(patient.get_by_role("heading", level=1)).to_have_text("Message sécurisé")
    assert_fits_width(patient, viewport)
    screenshot(patient, "securelink-code")
    patient.get_by_label("Code reçu").fill("000000" if code != "000000" else "111111")
    patient.get_by_role("button", name="Lire le message").click()
    expect(patient.get_by_text("Code erroné.")).to_be_visible()
    patient.get_by_label("Code reçu").fill(code)
    patient.get_by_role("button", name="Lire le message").click()
    expect(patient.get_by_role("heading", level=1)).to_have_text(SUBJECT)
    expect(patient.locator("article.mail")).to_contain_text("voici le devis de l'implant")
    assert_fits_width(patient, viewport)
    screenshot(patient, "securelink-read")
    with patient.expect_download() as download_info:
        patient.get_by_role("link", name="devis-implant.pdf", exact=True).click()
    download = download_info.value
    assert download.suggested_filename == "devis-implant.pdf"
    assert Path(download.path()).read_bytes() == pdf.read_bytes()

    patient.get_by_label("Votre réponse").fill("Merci docteur, je vous rappelle demain.")
    patient.get_by_role("button", name="Envoyer la réponse").click()
    expect(patient.get_by_text("Votre réponse a été transmise")).to_be_visible()
    screenshot(patient, "securelink-replied")

    # The dentist sees the link opened, the download, and the reply in the conversation.
    link = SecureLink.objects.get()
    page.goto(f"/messagerie/message/{link.message_id}/")
    panel = page.locator(".secure-links")
    expect(panel).to_contain_text(PATIENT)
    expect(panel).to_contain_text("ouvert le")
    expect(panel).to_contain_text("téléchargement de devis-implant.pdf")
    expect(page.locator("article.mail").filter(has_text="je vous rappelle demain")).to_be_visible()
    assert_fits_width(page, viewport)
    screenshot(page, "securelink-sender-panel")

    # Revoked: the patient's page says so.
    panel.get_by_role("button", name="Révoquer").click()
    expect(page.locator(".secure-links")).to_contain_text("révoqué le")
    patient.goto(link_path)
    expect(patient.get_by_role("heading", level=1)).to_have_text("Lien révoqué")
    screenshot(patient, "securelink-revoked")


def _link_path(notice_raw: bytes) -> str:
    notice = BytesParser(policy=policy.default).parsebytes(notice_raw)
    text = notice.get_body(("plain",)).get_content()
    return re.search(r"https?://\S+?(/lien/[A-Za-z0-9_-]+/)", text).group(1)


def test_wrong_codes_lock_the_link_and_an_expired_link_says_so(
    new_page, viewport, screenshot, live_server, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from apps.mailbox.models import Mailbox
    from apps.mailbox.services import Address, message_send
    from apps.securelink.services import secure_link_create

    settings.SITE_URL = live_server.url
    dentist, colleague = make_user(), make_user()
    sent = message_send(
        user=dentist, mailbox=Mailbox.objects.get(owner=dentist),
        to=[Address("", Mailbox.objects.get(owner=colleague).address)],
        subject=SUBJECT, text=BODY,
    )  # fmt: skip
    locked = secure_link_create(user=dentist, message=sent, address=PATIENT)
    expired = secure_link_create(user=dentist, message=sent, address="autre@gmail.example")
    SecureLink.objects.filter(pk=expired.link.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    patient = new_page()
    patient.goto(_link_path(locked.notice_raw))
    wrong = "000000" if locked.code_for_sender != "000000" else "111111"
    for _ in range(settings.SECURE_LINK_MAX_ATTEMPTS):
        expect(patient.get_by_label("Code reçu")).to_be_visible()
        patient.get_by_label("Code reçu").fill(wrong)
        patient.get_by_role("button", name="Lire le message").click()
    expect(patient.get_by_role("heading", level=1)).to_have_text("Lien verrouillé")
    # Even the right code no longer opens it.
    patient.goto(_link_path(locked.notice_raw))
    expect(patient.get_by_role("heading", level=1)).to_have_text("Lien verrouillé")
    assert_fits_width(patient, viewport)
    screenshot(patient, "securelink-locked")
    assert SecureLink.objects.get(pk=locked.link.pk).locked_at is not None

    patient.goto(_link_path(expired.notice_raw))
    expect(patient.get_by_role("heading", level=1)).to_have_text("Lien expiré")
    expect(patient.locator("body")).not_to_contain_text("Devis")
    screenshot(patient, "securelink-expired")
