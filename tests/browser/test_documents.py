"""The health-document card of a received report, in a real browser (desktop and phone)."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.mailbox import services
from apps.mailbox.models import Mailbox
from tests.browser.test_login_flows import assert_fits_width, confirmed_device, log_in
from tests.conftest import make_user, totp_code

pytestmark = pytest.mark.browser

REPORT = Path(__file__).resolve().parents[1] / "mailbox" / "fixtures" / "report-message.eml"


def test_report_card_shows_patient_and_leads_to_their_messages(new_page, viewport, screenshot):
    claire = make_user(first_name="Claire", last_name="Morel")
    mailbox = Mailbox.objects.get(owner=claire)
    message = services.message_deliver_raw(mailbox=mailbox, raw=REPORT.read_bytes())

    page = new_page()
    log_in(page, viewport, claire, totp_code(confirmed_device(claire)))
    page.goto(f"/messagerie/message/{message.pk}/")
    card = page.locator("section.doc-card")
    expect(card).to_contain_text("CR d’imagerie médicale")
    expect(card).to_contain_text("PAT-TROIS DOMINIQUE")
    expect(card).to_contain_text("279035121518989")
    expect(card).to_contain_text("28/03/1979")
    expect(card).to_contain_text("Jacques BIDEAULT")
    expect(card).to_contain_text("Centre de radiologie Ambroise")
    expect(card).to_contain_text("Intégrité vérifiée")
    expect(card.get_by_role("link", name="Lire le compte rendu")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).not_to_contain_text("XDM/1.0/DDM+")
    assert_fits_width(page, viewport)
    card.scroll_into_view_if_needed()
    screenshot(page, "document-card")

    card.get_by_role("link", name="PAT-TROIS DOMINIQUE").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Messages concernant un patient")
    expect(page.locator("li.message-row")).to_have_count(1)
    expect(page.locator("li.message-row")).to_contain_text("CR d’imagerie médicale")
    assert_fits_width(page, viewport)
    screenshot(page, "patient-filter")
