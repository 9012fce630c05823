"""The installable app and the alerts in a real browser (Chromium), on a phone and a tablet
with touch emulation: manifest and service worker, the offline page, urgent mail pinned and
marked, notification settings that take effect, and every main page comfortable on a phone.

With ``MSSWEB_DOCS_SCREENSHOTS=1`` the screenshots go to ``docs/screenshots/`` (the README's),
else to ``var/screenshots/``.
"""

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from apps.mailbox.models import Mailbox, Message
from apps.mailbox.services import Address, message_send
from apps.notifications import services
from apps.notifications.models import NotificationPreference
from tests.browser.conftest import PHONE, SCREENSHOT_DIR, Viewport
from tests.browser.test_login_flows import assert_fits_width, confirmed_device, log_in
from tests.conftest import make_user, totp_code
from tests.notifications.pushservice import BrowserKeys, PushService
from tests.notifications.tcpproxy import Relay

pytestmark = pytest.mark.browser

TABLET = Viewport("tablet", 768, 1024, is_mobile=True)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(params=[PHONE, TABLET], ids=lambda viewport: viewport.name)
def viewport(request) -> Viewport:
    return request.param


@pytest.fixture
def shoot(viewport):
    def save(page: Page, name: str) -> None:
        folder = DOCS if os.environ.get("MSSWEB_DOCS_SCREENSHOTS") == "1" else SCREENSHOT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=folder / f"{name}-{viewport.name}.png")

    return save


def send(sender, recipient, *, subject: str, text: str = "Bonjour,\nci-joint le compte rendu.",
         urgent: bool = False) -> Message:  # fmt: skip
    message_send(
        user=sender, mailbox=Mailbox.objects.get(owner=sender),
        to=[Address("", recipient.email)], subject=subject, text=text, urgent=urgent,
    )  # fmt: skip
    return Message.objects.filter(mailbox__owner=recipient).latest("id")


def assert_comfortable(page: Page, viewport: Viewport) -> None:
    """No sideways scrolling, and every control a finger uses at least 44 px high."""
    assert_fits_width(page, viewport)
    small = page.evaluate(
        """() => [...document.querySelectorAll(
              'button, .button, select, input:not([type=hidden]):not([type=checkbox])'
              + ':not([type=radio]):not([type=file]), nav a, summary, .message-row > a')]
            .filter((el) => el.offsetParent !== null)
            .map((el) => [el.outerHTML.slice(0, 80), Math.round(el.getBoundingClientRect().height)])
            .filter(([, height]) => height < 44)"""
    )
    assert small == [], f"{page.url}: tap targets under 44 px: {small}"


@pytest.fixture
def relay(live_server):
    """The live server behind a relay the test can cut (the site becomes unreachable)."""
    host, port = live_server.url.removeprefix("http://").split(":")
    relay = Relay(host, int(port))
    yield relay
    relay.cut()


def test_manifest_service_worker_and_offline_page(browser, relay, viewport, allow_audit_flush):
    user = make_user()
    send(make_user(), user, subject="Bienvenue")
    context = browser.new_context(base_url=relay.url, locale="fr-FR", **viewport.context_args)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        console = []
        page.on("console", lambda message: console.append(message.text))
        log_in(page, viewport, user, totp_code(confirmed_device(user)))
        href = page.locator('link[rel="manifest"]').get_attribute("href")
        manifest = page.evaluate("(href) => fetch(href).then((r) => r.json())", href)
        assert manifest["display"] == "standalone"
        assert {icon["sizes"] for icon in manifest["icons"]} >= {"192x192", "512x512"}
        for icon in manifest["icons"]:
            assert page.evaluate("(src) => fetch(src).then((r) => r.status)", icon["src"]) == 200

        scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
        assert scope == relay.url + "/"
        page.reload()  # now controlled by the worker
        page.wait_for_function("navigator.serviceWorker.controller !== null")
        page.goto("/messagerie/")
        expect(page.locator("li.message-row")).to_contain_text("Bienvenue")
        cached = page.evaluate(
            """() => caches.keys().then((names) => Promise.all(names.map((name) =>
                 caches.open(name).then((cache) => cache.keys()))))
               .then((lists) => lists.flat().map((request) => new URL(request.url).pathname))"""
        )
        assert "/hors-ligne/" in cached
        assert [p for p in cached if not p.startswith(("/static/", "/hors-ligne/"))] == []

        relay.cut()  # the server is now unreachable
        page.goto("/messagerie/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Pas de connexion")
        assert "Bienvenue" not in page.content()
        assert user.email not in page.content()
        assert_fits_width(page, viewport)
        assert [text for text in console if "Content Security Policy" in text] == []
    finally:
        context.close()


IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def test_add_to_home_screen_hint_on_an_iphone_can_be_dismissed(
    browser, live_server, viewport, allow_audit_flush
):
    user = make_user()
    context = browser.new_context(
        base_url=live_server.url, locale="fr-FR", user_agent=IPHONE_SAFARI,
        **viewport.context_args,
    )  # fmt: skip
    try:
        page = context.new_page()
        log_in(page, viewport, user, totp_code(confirmed_device(user)))
        hint = page.locator("#install-hint")
        expect(hint).to_be_visible()
        expect(hint).to_contain_text("Sur l'écran d'accueil")
        assert_fits_width(page, viewport)
        hint.get_by_role("button", name="Plus tard").click()
        expect(hint).to_be_hidden()
        page.reload()
        expect(hint).to_be_hidden()  # remembered on this device
    finally:
        context.close()


def test_urgent_message_comes_first_and_stands_out(page, viewport):
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    send(alice, bob, subject="Patient à réévaluer aujourd'hui", urgent=True)
    for n in range(3):
        send(alice, bob, subject=f"Compte rendu ordinaire {n}")
    log_in(page, viewport, bob, totp_code(confirmed_device(bob)))
    page.goto("/messagerie/")
    expect(page).to_have_title("(4) Boîte de réception · mssweb")
    first = page.locator("li.message-row").first
    expect(first).to_contain_text("Patient à réévaluer aujourd'hui")
    expect(first.locator(".badge-urgent")).to_be_visible()
    border = first.evaluate("(el) => getComputedStyle(el).borderLeftColor")
    assert border == "rgb(164, 38, 44)"  # --danger
    assert_comfortable(page, viewport)
    first.get_by_role("link").click()
    expect(page.locator("article.mail").first).to_contain_text("ci-joint le compte rendu")
    page.goto("/messagerie/")
    expect(page.locator(".urgent-pinned")).to_have_count(0)  # read: no longer pinned
    expect(page).to_have_title("(3) Boîte de réception · mssweb")


@pytest.fixture
def push_service(settings):
    settings.WEBPUSH_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBPUSH_REQUIRE_HTTPS = False
    service = PushService().start()
    yield service
    service.stop()


def test_notification_settings_save_and_take_effect(page, viewport, push_service):
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    keys = BrowserKeys()
    # The browser's own subscription would go through Google's servers: the device is the test's.
    services.subscription_save(
        user=bob, endpoint=push_service.endpoint("bob"), p256dh=keys.p256dh, auth=keys.auth,
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Safari/604.1",
    )  # fmt: skip
    log_in(page, viewport, bob, totp_code(confirmed_device(bob)))
    page.goto("/compte/notifications/")
    expect(page.get_by_text("Safari sur iPhone")).to_be_visible()
    page.get_by_label("Les messages urgents seulement").check()
    page.get_by_label("Seulement le nombre de nouveaux messages").check()
    page.get_by_label("De", exact=True).fill("22:00")
    page.get_by_label("à", exact=True).fill("07:00")
    assert_comfortable(page, viewport)
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_text("Préférences de notification enregistrées.")).to_be_visible()
    preference = NotificationPreference.objects.get(user=bob)
    assert (preference.events, preference.push_content) == ("urgent", "count")

    services.new_mail_notify(message_ids=[send(alice, bob, subject="Ordinaire").pk])
    assert push_service.to("bob") == []
    services.new_mail_notify(message_ids=[send(alice, bob, subject="Vite", urgent=True).pk])
    [received] = push_service.to("bob")
    payload = json.loads(keys.decrypt(received.body))
    assert payload["body"] == "1 nouveau message sécurisé, urgent"

    page.get_by_role("button", name="Envoyer une notification de test").click()
    expect(page.get_by_text("Notification de test envoyée à 1 appareil.")).to_be_visible()
    assert len(push_service.to("bob")) == 2
    page.get_by_role("button", name="Retirer").click()
    expect(page.get_by_text("Aucun appareil pour l'instant.")).to_be_visible()


def test_main_pages_are_comfortable_on_a_phone_and_a_tablet(
    new_page,
    viewport,
    shoot,
    directory,
):
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    send(alice, bob, subject="Résultats de la radiographie panoramique", urgent=True)
    message = send(
        alice, bob, subject="Adressage pour extraction des dents de sagesse",
        text="Cher confrère,\nje vous adresse Mme X pour l'extraction des 38 et 48.\n"
        "Panoramique jointe.\nBien confraternellement,\nDr Alice Martin",
    )  # fmt: skip
    send(alice, bob, subject="Réunion du réseau bucco-dentaire jeudi")

    page = new_page()
    page.goto("/compte/connexion/")
    assert_comfortable(page, viewport)
    shoot(page, "login")
    log_in(page, viewport, bob, totp_code(confirmed_device(bob)))
    pages = [
        ("inbox", "/messagerie/"),
        ("message", f"/messagerie/message/{message.pk}/"),
        ("compose", f"/messagerie/ecrire/?to={alice.email}"),
        ("directory", "/annuaire/?q=lefevre"),
        ("settings", "/compte/securite/"),
        ("notifications", "/compte/notifications/"),
    ]
    for name, url in pages:
        page.goto(url)
        assert_comfortable(page, viewport)
        shoot(page, name)
