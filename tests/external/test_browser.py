"""Real browser: the compose page says, as the address is typed and before sending, that the
recipient is outside the trust space; the choice made there is what gets sent."""

import pytest
from playwright.sync_api import expect

from apps.delivery.models import OutboundDelivery
from apps.mailbox.models import FolderKind, Message
from tests.browser.conftest import (  # noqa: F401 - fixtures
    browser_type_launch_args,
    new_page,
    page,
    screenshot,
    viewport,
)
from tests.browser.test_login_flows import confirmed_device, log_in
from tests.conftest import make_user, totp_code
from tests.external.conftest import NOKEY

pytestmark = pytest.mark.browser


def test_live_warning_then_encrypted_attachments_and_the_passphrase_once(
    page,  # noqa: F811
    viewport,  # noqa: F811
    screenshot,  # noqa: F811
    live_server,
):
    dentist = make_user(first_name="Claire", last_name="Morel")
    log_in(page, viewport, dentist, totp_code(confirmed_device(dentist)))
    page.goto("/messagerie/ecrire/")
    block = page.locator(".external-block")
    expect(block).to_be_hidden()
    page.get_by_label("À", exact=True).fill(f"{dentist.email}, {NOKEY}")
    expect(block).to_be_visible()
    expect(block.locator(".external-list")).to_contain_text(NOKEY)
    page.get_by_label("Objet", exact=True).fill("Compte rendu")
    page.get_by_role("textbox", name="Message").fill("Bonjour,\nle compte rendu.\n")
    page.get_by_label("pièces jointes chiffrées", exact=True).check()
    screenshot(page, "external-compose-warning")
    page.get_by_role("button", name="Envoyer", exact=True).click()
    passphrase = page.locator(".external-sent code.secret")
    expect(passphrase).to_be_visible()
    assert len(passphrase.inner_text()) == 24
    sent = Message.objects.get(folder__kind=FolderKind.SENT)
    assert OutboundDelivery.objects.get(message=sent, recipient=NOKEY).route == "external"
    page.reload()  # shown once only
    expect(page.locator(".external-sent")).to_have_count(0)

    # Back to a recipient inside the trust space only: the warning goes away.
    page.goto("/messagerie/ecrire/")
    page.get_by_label("À", exact=True).fill(NOKEY)
    expect(block).to_be_visible()
    page.get_by_label("À", exact=True).fill(dentist.email)
    expect(block).to_be_hidden()
