"""The login flows in a real browser, on a desktop screen and on a phone.

Every test runs at both viewports (see ``conftest.viewport``); on the phone, the pages a
professional goes through must not scroll sideways.
"""

import base64
import re
import time

import pytest
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from apps.accounts.models import UserSession
from tests.browser.conftest import Viewport
from tests.conftest import PASSWORD, make_user, totp_code

pytestmark = pytest.mark.browser

LOGIN_URL = re.compile(r"/compte/connexion/(\?.*)?$")
VERIFY_URL = re.compile(r"/compte/connexion/code/$")
ENROL_URL = re.compile(r"/compte/connexion/inscription-2fa/$")
HOME_URL = re.compile(r"://[^/]+/$")
WRONG_CODE_ERROR = "Code incorrect ou déjà utilisé."


# --- Helpers ------------------------------------------------------------------------------------


def assert_fits_width(page: Page, viewport: Viewport) -> None:
    """On a phone, the page must not scroll sideways.

    A mobile browser widens its layout viewport to fit content that is too wide (and zooms
    out), so ``window.innerWidth`` grows with the overflow: it must also still be the phone's.
    """
    if not viewport.is_mobile:
        return
    scroll_width, inner_width = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert scroll_width <= inner_width == viewport.width, (
        f"{page.url} scrolls sideways on a {viewport.width}px phone: "
        f"content is {scroll_width}px wide, layout viewport {inner_width}px"
    )


def enter_password(page: Page, viewport: Viewport, email: str, *, screenshot=None) -> None:
    page.goto("/compte/connexion/")
    expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
    assert_fits_width(page, viewport)
    if screenshot:
        screenshot(page, "login")
    page.get_by_label("Adresse MSSanté").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Continuer").click()


def enter_code(page: Page, code: str) -> None:
    page.locator("input[name=code]").fill(code)
    page.get_by_role("button", name="Vérifier").click()


def log_in(page: Page, viewport: Viewport, user, code: str) -> None:
    """Both steps with ``code``, ending on the home page."""
    enter_password(page, viewport, user.email)
    expect(page).to_have_url(VERIFY_URL)
    enter_code(page, code)
    expect_home(page, viewport, user)


def expect_home(page: Page, viewport: Viewport, user) -> None:
    expect(page).to_have_url(HOME_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Bonjour Dr {user.first_name} {user.last_name}"
    )
    assert_fits_width(page, viewport)


def expect_code_refused(page: Page, viewport: Viewport) -> None:
    expect(page).to_have_url(VERIFY_URL)
    expect(page.get_by_role("alert")).to_contain_text(WRONG_CODE_ERROR)
    assert_fits_width(page, viewport)


def log_out(page: Page, viewport: Viewport) -> None:
    """With the header's button; on a phone the navigation is folded behind "Menu"."""
    nav = page.get_by_role("navigation", name="Navigation principale")
    button = nav.get_by_role("button", name="Se déconnecter")
    if viewport.is_mobile:
        expect(button).to_be_hidden()
        page.get_by_text("Menu", exact=True).tap()
    button.click()
    expect(page).to_have_url(LOGIN_URL)
    expect(page.get_by_text("Vous êtes déconnecté.")).to_be_visible()


def confirmed_device(user) -> TOTPDevice:
    return TOTPDevice.objects.get(user=user, confirmed=True)


def wrong_code(device: TOTPDevice) -> str:
    """Six digits that no time step near now accepts."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    near = set()
    for offset in range(-2, 3):
        totp.time = time.time() + offset * device.step
        near.add(f"{totp.token():06d}")
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in near)


def enrol_in_browser(page: Page, viewport: Viewport, user, *, screenshot=None) -> list[str]:
    """First login of ``user`` (no authenticator yet): set it up from the secret the page
    shows, as a phone app would. Returns the backup codes shown, and ends on the home page."""
    enter_password(page, viewport, user.email, screenshot=screenshot)
    expect(page).to_have_url(ENROL_URL)
    expect(page.locator("figure.qr svg")).to_be_visible()
    assert_fits_width(page, viewport)
    if screenshot:
        screenshot(page, "enrol")

    page.get_by_text("Impossible de scanner ? Saisir la clé à la main").click()
    secret = page.locator("#totp-secret")
    expect(secret).to_be_visible()
    groups = secret.inner_text().split()
    assert all(len(group) <= 4 for group in groups)
    typed = "".join(groups)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert typed == base64.b32encode(device.bin_key).decode().rstrip("=")
    key = base64.b32decode(typed + "=" * (-len(typed) % 8))

    page.locator("input[name=code]").fill(f"{TOTP(key).token():06d}")
    page.get_by_role("button", name="Activer").click()

    codes_list = page.locator("#backup-codes code")
    expect(codes_list).to_have_count(10)
    codes = codes_list.all_inner_texts()
    assert all(re.fullmatch(r"[a-z0-9]{4}-[a-z0-9]{4}", code) for code in codes), codes
    assert len(set(codes)) == 10
    assert_fits_width(page, viewport)
    page.get_by_role("link", name="J'ai noté mes codes, continuer").click()
    expect_home(page, viewport, user)
    return codes


# --- Tests --------------------------------------------------------------------------------------


def test_first_login_enrols_an_authenticator_and_shows_backup_codes(page, viewport, screenshot):
    user = make_user(enrolled=False, first_name="Inès", last_name="Garnier")

    enrol_in_browser(page, viewport, user, screenshot=screenshot)

    assert confirmed_device(user)
    screenshot(page, "home")


def test_login_with_an_authenticator_code(page, viewport, screenshot):
    user = make_user()

    enter_password(page, viewport, user.email)
    expect(page).to_have_url(VERIFY_URL)
    expect(page.get_by_role("heading", name="Code de vérification")).to_be_visible()
    assert_fits_width(page, viewport)
    screenshot(page, "verify")
    enter_code(page, totp_code(confirmed_device(user)))

    expect_home(page, viewport, user)
    assert UserSession.objects.filter(user=user, ended_at__isnull=True).count() == 1


def test_wrong_code_is_refused_then_the_right_one_is_accepted(page, viewport):
    user = make_user()
    device = confirmed_device(user)

    enter_password(page, viewport, user.email)
    enter_code(page, wrong_code(device))
    expect_code_refused(page, viewport)
    assert not UserSession.objects.filter(user=user).exists()

    # The right code, typed at once after the wrong one, is accepted.
    enter_code(page, totp_code(device))
    expect_home(page, viewport, user)


def test_replayed_code_is_refused(page, viewport):
    user = make_user()
    code = totp_code(confirmed_device(user))
    log_in(page, viewport, user, code)
    log_out(page, viewport)

    enter_password(page, viewport, user.email)
    expect(page).to_have_url(VERIFY_URL)
    enter_code(page, code)

    expect_code_refused(page, viewport)
    page.goto("/")
    expect(page).to_have_url(LOGIN_URL)


def test_login_with_a_backup_code(page, viewport):
    user = make_user(enrolled=False)
    codes = enrol_in_browser(page, viewport, user)
    log_out(page, viewport)

    enter_password(page, viewport, user.email)
    expect(page).to_have_url(VERIFY_URL)
    enter_code(page, codes[3])

    expect_home(page, viewport, user)
    expect(page.get_by_text("9 codes de secours restants")).to_be_visible()


def test_logout_from_the_header_ends_the_session(page, viewport):
    user = make_user()
    log_in(page, viewport, user, totp_code(confirmed_device(user)))

    log_out(page, viewport)

    assert_fits_width(page, viewport)
    page.goto("/")
    expect(page).to_have_url(LOGIN_URL)
    assert not UserSession.objects.filter(user=user, ended_at__isnull=True).exists()


def test_closing_another_session_logs_that_browser_out(new_page, viewport):
    user = make_user()
    device = confirmed_device(user)
    page_a, page_b = new_page(), new_page()
    log_in(page_a, viewport, user, totp_code(device))
    log_in(page_b, viewport, user, totp_code(device))
    session_key_b = next(
        c["value"] for c in page_b.context.cookies() if c["name"] == "mssweb_session"
    )
    session_b = UserSession.objects.get(session_key=session_key_b)

    page_a.goto("/compte/sessions/")
    sessions = page_a.locator("li.session")
    expect(sessions).to_have_count(2)
    assert_fits_width(page_a, viewport)
    expect(page_a.get_by_role("button", name="Fermer toutes les autres sessions")).to_be_visible()
    page_a.locator(f'li.session[data-session="{session_b.public_id}"]').get_by_role(
        "button", name="Fermer cette session"
    ).click()
    expect(page_a.get_by_text("La session a été fermée.")).to_be_visible()
    expect(sessions).to_have_count(1)

    page_b.goto("/compte/sessions/")
    expect(page_b).to_have_url(LOGIN_URL)
    page_a.goto("/")
    expect_home(page_a, viewport, user)


def test_admin_is_refused_after_the_password_alone(page, viewport):
    staff = make_user(staff=True)

    enter_password(page, viewport, staff.email)
    expect(page).to_have_url(VERIFY_URL)
    page.goto("/admin/")

    expect(page).to_have_url(LOGIN_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
    expect(page.get_by_text("administration")).to_have_count(0)


def test_admin_is_reachable_after_both_factors(page, viewport):
    staff = make_user(staff=True)
    log_in(page, viewport, staff, totp_code(confirmed_device(staff)))

    page.goto("/admin/")

    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#site-name")).to_contain_text("administration")
    expect(page.get_by_role("heading", name="Comptes, boîtes et traces")).to_be_visible()
