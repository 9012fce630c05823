"""Previewing a PDF and an image attachment in a real browser, on a desk screen and a phone."""

from email.message import EmailMessage

import pytest
from playwright.sync_api import expect

from apps.mailbox import services
from apps.mailbox.models import Mailbox
from tests.browser.test_login_flows import assert_fits_width, confirmed_device, log_in
from tests.conftest import make_user, totp_code
from tests.mailbox.test_preview import make_pdf, tiny_png

pytestmark = pytest.mark.browser


def loaded_width(locator) -> int:
    """The image's natural width once it has loaded (0 if it failed to load)."""
    return locator.evaluate(
        """img => img.complete ? img.naturalWidth : new Promise(done => {
            img.addEventListener("load", () => done(img.naturalWidth));
            img.addEventListener("error", () => done(0));
        })"""
    )


def test_pdf_and_image_previews_show_pages_as_images(page, viewport, screenshot):
    alice = make_user(first_name="Alice", last_name="Martin")
    mail = EmailMessage()
    mail["From"] = "Dr Bob Durand <bob@test.mssante.fr>"
    mail["To"] = alice.email
    mail["Subject"] = "Compte rendu opératoire"
    mail.set_content("Bonjour,\nci-joint le compte rendu et la radio.")
    pdf = make_pdf(
        pages=3,
        text="Compte rendu operatoire",
        catalog="/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >> ",
    )
    mail.add_attachment(pdf, maintype="application", subtype="pdf", filename="compte-rendu.pdf")
    mail.add_attachment(tiny_png(40, 30), maintype="image", subtype="png", filename="radio.png")
    message = services.message_deliver_raw(
        mailbox=Mailbox.objects.get(owner=alice), raw=bytes(mail)
    )
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda entry: csp_errors.append(entry.text) if "Content Security" in entry.text else None,
    )

    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto(f"/messagerie/message/{message.pk}/")
    page.get_by_role("link", name="Aperçu de compte-rendu.pdf").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Aperçu — compte-rendu.pdf")
    first = page.get_by_role("img", name="Page 1")
    expect(first).to_be_visible()
    assert loaded_width(first) == 893
    # Shown at the width of the screen, never wider.
    box = first.bounding_box()
    assert box is not None
    assert box["width"] <= viewport.width
    assert_fits_width(page, viewport)
    last = page.get_by_role("img", name="Page 3")
    last.scroll_into_view_if_needed()
    expect(last).to_be_visible()
    assert loaded_width(last) == 893
    expect(page.get_by_role("link", name="Télécharger")).to_be_visible()
    screenshot(page, "preview-pdf")

    page.get_by_role("link", name="Retour au message").click()
    expect(page.locator("article.mail")).to_contain_text("ci-joint le compte rendu")
    page.get_by_role("link", name="Aperçu de radio.png").click()
    image = page.get_by_role("img", name="radio.png")
    expect(image).to_be_visible()
    assert loaded_width(image) == 40
    assert_fits_width(page, viewport)
    screenshot(page, "preview-image")
    assert csp_errors == []
