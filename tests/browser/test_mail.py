"""Writing to a local colleague and reading the answer, in a real browser (desktop and phone)."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.directory.models import Contact
from tests.browser.test_login_flows import assert_fits_width, confirmed_device, log_in
from tests.conftest import make_user, totp_code

pytestmark = pytest.mark.browser


def test_send_with_attachment_read_download_and_reply(new_page, viewport, screenshot, tmp_path):
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    report = tmp_path / "compte-rendu.pdf"
    report.write_bytes(b"%PDF-1.4\n% compte rendu\n" + b"0" * 5000)

    page = new_page()
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto(f"/messagerie/ecrire/?to={bob.email}")
    page.get_by_label("Objet", exact=True).fill("Compte rendu de Mme X")
    page.get_by_role("textbox", name="Message").fill(
        "Bonjour,\nci-joint le compte rendu.\nBien à vous"
    )
    page.get_by_label("Pièces jointes", exact=True).set_input_files(str(report))
    assert_fits_width(page, viewport)
    screenshot(page, "compose-filled")
    page.get_by_role("button", name="Envoyer").click()
    expect(page.get_by_text("Message envoyé.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/messagerie/\d+/sent/$"))

    other = new_page()
    log_in(other, viewport, bob, totp_code(confirmed_device(bob)))
    other.goto("/messagerie/")
    row = other.locator("li.message-row.unread")
    expect(row).to_contain_text("Compte rendu de Mme X")
    assert_fits_width(other, viewport)
    screenshot(other, "inbox")
    row.get_by_role("link").click()
    expect(other.locator("article.mail")).to_contain_text("ci-joint le compte rendu.")
    screenshot(other, "message")
    with other.expect_download() as download_info:
        other.get_by_role("link", name="compte-rendu.pdf", exact=True).click()
    download = download_info.value
    assert download.suggested_filename == "compte-rendu.pdf"
    assert Path(download.path()).read_bytes() == report.read_bytes()

    other.get_by_role("link", name="Répondre").click()
    expect(other.get_by_label("Objet", exact=True)).to_have_value("Re: Compte rendu de Mme X")
    other.get_by_role("textbox", name="Message").fill("Merci, bien reçu.")
    other.get_by_role("button", name="Envoyer").click()
    expect(other.get_by_text("Message envoyé.")).to_be_visible()

    page.goto("/messagerie/")
    page.locator("li.message-row").filter(has_text="Re: Compte rendu").get_by_role("link").click()
    thread = page.locator("article.mail")
    expect(thread).to_have_count(2)
    expect(thread.first).to_contain_text("ci-joint le compte rendu.")
    expect(thread.last).to_contain_text("Merci, bien reçu.")
    assert_fits_width(page, viewport)


def test_draft_autosave_survives_a_reload_and_bulk_move(new_page, viewport):
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    page = new_page()
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto("/messagerie/ecrire/")
    page.get_by_label("Objet", exact=True).fill("Brouillon de lettre")
    page.get_by_role("textbox", name="Message").fill("Cher confrère, je vous adresse")
    expect(page.locator("#draft-status")).to_contain_text("Brouillon enregistré", timeout=10_000)
    page.reload()
    page.goto("/messagerie/")
    page.get_by_role("navigation", name="Dossiers").get_by_role("link", name="Brouillons").click()
    page.locator("li.message-row").filter(has_text="Brouillon de lettre").get_by_role(
        "link"
    ).click()
    expect(page.get_by_role("textbox", name="Message")).to_have_value(
        "Cher confrère, je vous adresse"
    )

    # Autocompletion offers the contact; choosing it fills the address.
    Contact.objects.create(
        owner=alice, email=bob.email, display_name="Dr Bob Durand", key="durand bob"
    )
    to = page.get_by_label("À", exact=True)
    to.press_sequentially("dura", delay=50)
    suggestion = page.get_by_role("option").filter(has_text=bob.email)
    expect(suggestion).to_be_visible()
    suggestion.click()
    expect(to).to_have_value(f"Dr Bob Durand <{bob.email}>, ")
    page.get_by_role("button", name="Envoyer").click()
    expect(page.get_by_text("Message envoyé.")).to_be_visible()

    # Bob moves it to Archives with the list's checkboxes.
    other = new_page()
    log_in(other, viewport, bob, totp_code(confirmed_device(bob)))
    other.goto("/messagerie/")
    other.get_by_label("Sélectionner : Brouillon de lettre").check()
    other.get_by_label("Action", exact=True).select_option("archive")
    other.get_by_role("button", name="Appliquer").click()
    expect(other.get_by_text("1 message déplacé vers « Archives ».")).to_be_visible()
    expect(other.locator("li.message-row")).to_have_count(0)
    assert_fits_width(other, viewport)


def test_keyboard_shortcuts_on_desktop(new_page, viewport):
    if viewport.is_mobile:
        return  # a desktop feature: phones have no keyboard shortcuts to test
    from apps.mailbox import services
    from apps.mailbox.models import Mailbox

    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    services.message_send(
        user=bob, mailbox=Mailbox.objects.get(owner=bob),
        to=[services.Address("", alice.email)], subject="Raccourci", text="Par le clavier",
    )  # fmt: skip
    page = new_page()
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto("/messagerie/")
    page.keyboard.press("j")
    page.keyboard.press("o")
    expect(page.get_by_role("heading", level=1)).to_have_text("Raccourci")
    page.keyboard.press("r")
    expect(page.get_by_label("Objet", exact=True)).to_have_value("Re: Raccourci")


def test_search_finds_a_word_of_the_body(page, viewport):
    from apps.mailbox import services
    from apps.mailbox.models import Mailbox

    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    for subject, text in (("Bilan", "Panoramique dentaire normal."),
                          ("Autre", "Rien à signaler.")):  # fmt: skip
        services.message_send(
            user=bob, mailbox=Mailbox.objects.get(owner=bob),
            to=[services.Address("", alice.email)], subject=subject, text=text,
        )  # fmt: skip
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto("/messagerie/")
    folders = page.get_by_role("navigation", name="Dossiers")
    folders.get_by_role("link", name="Rechercher").click()
    page.get_by_label("Rechercher dans les messages").fill("panoramique")
    page.get_by_role("button", name="Rechercher").click()
    results = page.locator("ol.message-list li")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("Bilan")
    expect(results.first.locator("mark")).to_have_text(re.compile("panoramique", re.I))
    assert_fits_width(page, viewport)
