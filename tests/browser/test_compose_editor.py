"""The compose page's formatting editor and attachment helpers, in a real browser."""

import re

import pytest
from playwright.sync_api import Page, expect

from apps.mailbox.models import Message
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.test_login_flows import assert_fits_width, confirmed_device, log_in
from tests.conftest import make_user, totp_code

pytestmark = pytest.mark.browser

DROP_FILE = """([name, size]) => {
  const data = new DataTransfer();
  data.items.add(new File([new Uint8Array(size)], name, {type: "application/pdf"}));
  const zone = document.querySelector(".dropzone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: data}));
  }
}"""


def open_editor(page: Page) -> None:
    toggle = page.get_by_role("button", name="Mise en forme", exact=True)
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(page.locator("textarea[name=text]")).to_be_hidden()


def type_with_a_bold_word(page: Page) -> None:
    editor = page.get_by_role("textbox", name="Message")
    editor.click()
    page.keyboard.type("Bonjour, le résultat est ")
    bold = page.get_by_role("button", name="Gras")
    bold.click()
    expect(bold).to_have_attribute("aria-pressed", "true")
    page.keyboard.type("normal")
    bold.click()
    expect(bold).to_have_attribute("aria-pressed", "false")
    page.keyboard.type(" et rassurant.")


@pytest.mark.parametrize("viewport", [DESKTOP], indirect=True, ids=["desktop"])
def test_bold_word_and_dropped_file_reach_a_local_colleague(
    new_page, viewport, screenshot, settings
):
    settings.MAILBOX_MAX_MESSAGE_SIZE = 50_000
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    page = new_page()
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto(f"/messagerie/ecrire/?to={bob.email}")
    page.get_by_label("Objet", exact=True).fill("Résultat de la radio")
    open_editor(page)
    type_with_a_bold_word(page)
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Liste à puces").click()
    page.keyboard.type("contrôle dans un an")
    hidden = page.locator("input[name=body_html]")
    expect(hidden).to_have_value(re.compile(r"<b>normal</b>|<strong>normal</strong>"))
    expect(hidden).to_have_value(re.compile(r"<ul><li>contrôle dans un an</li></ul>"))

    zone = page.get_by_text("Déposez vos fichiers ici")
    expect(zone).to_be_visible()
    expect(page.get_by_text("Prendre une photo")).to_be_hidden()  # desktop: no camera button
    page.evaluate(DROP_FILE, ["trop-gros.pdf", 60_000])
    expect(page.locator(".file-warning")).to_contain_text("taille maximale")
    page.get_by_role("button", name="Retirer trop-gros.pdf").click()
    expect(page.locator(".file-warning")).to_be_hidden()
    page.evaluate(DROP_FILE, ["ordonnance.pdf", 2_000])
    files = page.locator(".file-list li")
    expect(files).to_have_count(1)
    expect(files.first).to_contain_text("ordonnance.pdf")
    expect(files.first).to_contain_text("2 ko")
    assert page.evaluate("document.getElementById('id_files').files.length") == 1
    screenshot(page, "compose-editor")
    page.get_by_role("button", name="Envoyer").click()
    expect(page.get_by_text("Message envoyé.")).to_be_visible()

    received = Message.objects.get(mailbox__owner=bob)
    assert "<b>normal</b>" in received.html_body or "<strong>normal</strong>" in received.html_body
    assert received.text_body.startswith("Bonjour, le résultat est normal et rassurant.")
    assert "- contrôle dans un an" in received.text_body

    other = new_page()
    log_in(other, viewport, bob, totp_code(confirmed_device(bob)))
    other.goto("/messagerie/")
    other.locator("li.message-row").filter(has_text="Résultat de la radio").get_by_role(
        "link"
    ).click()
    frame = other.frame_locator("iframe.mail-frame")
    expect(frame.locator("b, strong").filter(has_text="normal")).to_be_visible()
    expect(frame.locator("li")).to_have_text("contrôle dans un an")
    expect(other.get_by_role("link", name="ordonnance.pdf", exact=True)).to_be_visible()
    screenshot(other, "message-formatted")


@pytest.mark.parametrize("viewport", [PHONE], indirect=True, ids=["phone"])
def test_editor_and_photo_button_on_a_phone(new_page, viewport, screenshot, tmp_path):
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    photo = tmp_path / "plaie.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + bytes(4_000))
    page = new_page()
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto(f"/messagerie/ecrire/?to={bob.email}")
    page.get_by_label("Objet", exact=True).fill("Photo de la plaie")
    open_editor(page)
    type_with_a_bold_word(page)
    for button in (
        page.get_by_role("toolbar", name="Mise en forme du message").get_by_role("button").all()
    ):
        box = button.bounding_box()
        label = button.get_attribute("aria-label")
        assert box["width"] >= 44, label
        assert box["height"] >= 44, label
    expect(page.get_by_text("Déposez vos fichiers ici")).to_be_hidden()
    camera = page.get_by_label("Prendre une photo")
    expect(page.get_by_text("Prendre une photo")).to_be_visible()
    assert camera.get_attribute("capture") == "environment"
    camera.set_input_files(str(photo))
    expect(page.locator(".file-list li")).to_contain_text("plaie.jpg")
    assert page.evaluate("document.getElementById('id_files').files.length") == 1
    assert_fits_width(page, viewport)
    screenshot(page, "compose-editor")
    page.get_by_role("button", name="Envoyer").click()
    expect(page.get_by_text("Message envoyé.")).to_be_visible()
    received = Message.objects.get(mailbox__owner=bob)
    assert "normal" in received.html_body
    assert [a.filename for a in received.attachments.all()] == ["plaie.jpg"]  # posted once


@pytest.mark.parametrize("viewport", [DESKTOP], indirect=True, ids=["desktop"])
def test_formatted_draft_reopens_in_the_editor(new_page, viewport):
    alice = make_user(first_name="Alice", last_name="Martin")
    page = new_page()
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto("/messagerie/ecrire/")
    page.get_by_label("Objet", exact=True).fill("Lettre en cours")
    open_editor(page)
    type_with_a_bold_word(page)
    page.get_by_role("button", name="Enregistrer le brouillon").click()
    expect(page.get_by_text("Brouillon enregistré.")).to_be_visible()
    editor = page.get_by_role("textbox", name="Message")
    expect(editor).to_be_visible()
    expect(editor.locator("b, strong")).to_have_text("normal")
    expect(page.get_by_role("button", name="Mise en forme", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )


@pytest.mark.parametrize("viewport", [DESKTOP], indirect=True, ids=["desktop"])
def test_link_quote_shortcut_and_html_reply_quote(new_page, viewport):
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    page = new_page()
    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto(f"/messagerie/ecrire/?to={bob.email}")
    open_editor(page)
    page.get_by_role("textbox", name="Message").click()
    page.keyboard.press("Control+i")
    page.keyboard.type("penché")
    page.keyboard.press("Control+i")
    page.keyboard.type(" puis ")
    answers = iter(["javascript:alert(1)", "https://has-sante.fr/reco"])
    dialogs = []

    def answer(dialog):
        dialogs.append((dialog.type, dialog.message))
        dialog.accept(next(answers)) if dialog.type == "prompt" else dialog.accept()

    page.on("dialog", answer)
    page.get_by_role("button", name="Lien").click()  # refused: only http(s) and mailto
    page.get_by_role("button", name="Lien").click()
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Citation").click()
    expect(page.get_by_role("button", name="Citation")).to_have_attribute("aria-pressed", "true")
    page.keyboard.type("cité")
    assert [kind for kind, _message in dialogs] == ["prompt", "alert", "prompt"]
    assert "http, https et mailto" in dialogs[1][1]
    hidden = page.locator("input[name=body_html]")
    expect(hidden).to_have_value(re.compile(r"<(em|i)>penché</(em|i)>"))
    expect(hidden).to_have_value(re.compile(r'<a href="https://has-sante.fr/reco">'))
    expect(hidden).to_have_value(re.compile(r"<blockquote><p>cité</p></blockquote>"))
    assert "javascript" not in hidden.input_value()
    page.get_by_label("Objet", exact=True).fill("Avis")
    page.get_by_role("button", name="Envoyer").click()
    expect(page.get_by_text("Message envoyé.")).to_be_visible()

    # Formatting stays on (remembered by this browser): Alice answers herself from Envoyés,
    # the HTML message is quoted in the editor.
    sent = Message.objects.get(mailbox__owner=alice, folder__kind="sent")
    page.goto(f"/messagerie/ecrire/?repondre={sent.pk}")
    editor = page.get_by_role("textbox", name="Message")
    expect(editor).to_be_visible()
    quote = editor.locator("blockquote").first
    expect(quote).to_contain_text("penché")
    expect(quote.locator("a")).to_have_attribute("href", "https://has-sante.fr/reco")
    expect(editor).to_contain_text("Dr Alice Martin a écrit :")
    page.get_by_role("button", name="Mise en forme", exact=True).click()  # back to text
    text = page.locator("textarea[name=text]")
    expect(text).to_be_visible()
    expect(text).to_have_value(
        re.compile(
            r"Dr Alice Martin a écrit :\n\n> penché puis https://has-sante\.fr/reco\n>\n>> cité$"
        )
    )
    expect(page.locator("input[name=body_html]")).to_have_value("")
