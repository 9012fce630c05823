"""The national directory in a real browser, at desktop size and on a 360 px phone."""

import re

import pytest
from playwright.sync_api import expect

from apps.directory.importer import directory_import
from tests.browser.test_login_flows import assert_fits_width, confirmed_device, log_in
from tests.conftest import make_user, totp_code
from tests.directory.conftest import LEFEVRE, activity, mailbox, write_pair

pytestmark = pytest.mark.browser


@pytest.fixture
def directory(tmp_path):
    pair = write_pair(
        tmp_path,
        [
            activity(LEFEVRE, "LEFÈVRE", "Hélène", **{
                "Raison sociale site": "Cabinet d'orthodontie du Parc",
                "Libellé savoir-faire": "Orthopédie dento-faciale",
                "Code type savoir-faire": "S", "Code savoir-faire": "SCD01",
            }),
            activity(LEFEVRE, "LEFÈVRE", "Hélène", **{
                "Raison sociale site": "Centre dentaire de Bourg",
                "Libellé commune (coord. structure)": "Bourg-en-Bresse",
                "Code postal (coord. structure)": "01000",
            }),
            activity("801234560801", "LEFEBVRE", "Marc", **{"Code profession": "10"}),
        ],
        [mailbox("helene.lefevre@chirurgien-dentiste.mssante.fr", LEFEVRE, "LEFÈVRE", "Hélène")],
    )  # fmt: skip
    return directory_import(activities=pair.activities, mssante=pair.mssante)


def open_menu_link(page, viewport, name: str) -> None:
    nav = page.get_by_role("navigation", name="Navigation principale")
    if viewport.is_mobile:
        page.get_by_text("Menu", exact=True).tap()
    nav.get_by_role("link", name=name, exact=True).click()


def test_search_a_colleague_open_the_record_and_keep_them_in_contacts(
    page, viewport, screenshot, directory
):
    user = make_user()
    log_in(page, viewport, user, totp_code(confirmed_device(user)))
    open_menu_link(page, viewport, "Annuaire")
    expect(page.get_by_role("heading", level=1)).to_have_text("Annuaire santé")
    page.get_by_label("Nom").fill("helene lefevre")
    page.get_by_text("Plus de critères").click()
    page.get_by_label("Profession").select_option("40")
    page.get_by_role("button", name="Rechercher").click()

    results = page.locator("li.person")
    expect(results).to_have_count(1)
    card = results.first
    expect(card).to_contain_text("Orthopédie dento-faciale")
    expect(card).to_contain_text("helene.lefevre@chirurgien-dentiste.mssante.fr")
    assert_fits_width(page, viewport)
    screenshot(page, "directory-search")

    card.get_by_role("link", name=re.compile("Hélène")).click()
    expect(page).to_have_url(re.compile(rf"/annuaire/pro/{LEFEVRE}/$"))
    expect(page.get_by_text("Centre dentaire de Bourg").first).to_be_visible()
    assert_fits_width(page, viewport)
    screenshot(page, "directory-professional")

    page.get_by_role("button", name="Ajouter aux contacts").click()
    expect(page.get_by_text("Dans vos contacts", exact=True)).to_be_visible()
    open_menu_link(page, viewport, "Contacts")
    expect(page.locator("li.contact")).to_contain_text("Dr Hélène LEFÈVRE")
    assert_fits_width(page, viewport)
    screenshot(page, "contacts")

    # "Écrire" opens compose with the colleague as recipient.
    page.go_back()
    page.get_by_role("link", name="Écrire").first.click()
    expect(page).to_have_url(re.compile(r"/messagerie/ecrire/\?to="))
    expect(page.get_by_label("À", exact=True)).to_have_value(
        "helene.lefevre@chirurgien-dentiste.mssante.fr"
    )
    assert_fits_width(page, viewport)
    screenshot(page, "compose")
