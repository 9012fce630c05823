"""Settings page, device registration, the installable app's files, and the inbox markers."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from apps.mailbox.models import Mailbox
from apps.mailbox.services import Address, message_send
from apps.notifications import conf, services
from apps.notifications.models import NotificationPreference, PushSubscription
from apps.notifications.sms import normalise_phone
from tests.conftest import login, make_user
from tests.notifications.pushservice import BrowserKeys

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/compte/notifications/"
ANDROID_CHROME = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/130.0 Mobile"


def client_for(user, **headers) -> Client:
    client = Client(**headers)
    login(client, user)
    return client


def test_settings_page_offers_this_device_and_the_preferences(user):
    response = client_for(user).get(SETTINGS_URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-vapid-key="{conf.vapid_keys().public_key}"' in page
    assert "Activer les notifications sur cet appareil" in page
    assert "Heures calmes" in page


def test_security_page_links_to_the_notification_settings(user):
    assert SETTINGS_URL in client_for(user).get("/compte/securite/").content.decode()


def test_saving_preferences(user):
    client = client_for(user)
    response = client.post(
        SETTINGS_URL,
        {
            "events": "urgent", "push_enabled": "on", "push_content": "count",
            "digest": "hourly", "quiet_start": "21:00", "quiet_end": "07:30",
            "sms_enabled": "on", "phone": "06 12 34 56 78",
        },
    )  # fmt: skip
    assert response.status_code == 302
    preference = NotificationPreference.objects.get(user=user)
    assert (preference.events, preference.push_content, preference.digest) == (
        "urgent", "count", "hourly",
    )  # fmt: skip
    assert preference.quiet_start.hour == 21
    assert preference.quiet_end.minute == 30
    assert preference.phone == "+33612345678"
    assert preference.sms_enabled


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"sms_enabled": "on", "phone": "01 23 45 67 89"}, "phone", "mobile français"),
        ({"sms_enabled": "on"}, "phone", "numéro qui recevra"),
        ({"email_enabled": "on"}, "personal_email", "adresse qui recevra"),
        ({"quiet_start": "22:00"}, "quiet_end", "début et la fin"),
    ],
)
def test_bad_preferences_are_refused_in_french(user, data, field, error):
    base = {"events": "all", "push_content": "sender", "digest": "immediate"}
    response = client_for(user).post(SETTINGS_URL, {**base, **data})
    assert response.status_code == 400
    assert error in " ".join(response.context["form"].errors[field])
    assert not NotificationPreference.objects.filter(user=user).exists()


def test_a_browser_registers_its_subscription(user):
    keys = BrowserKeys()
    client = client_for(user, HTTP_USER_AGENT=ANDROID_CHROME)
    response = client.post(
        "/compte/notifications/appareils/",
        {"endpoint": "https://fcm.googleapis.com/fcm/send/abc:def", "p256dh": keys.p256dh,
         "auth": keys.auth},
    )  # fmt: skip
    assert response.status_code == 201
    subscription = PushSubscription.objects.get(user=user)
    assert subscription.device_label == "Chrome sur Android"
    assert "Chrome sur Android" in client.get(SETTINGS_URL).content.decode()


def test_registration_needs_the_csrf_token(user):
    client = client_for(user)
    client.handler.enforce_csrf_checks = True
    keys = BrowserKeys()
    response = client.post(
        "/compte/notifications/appareils/",
        {"endpoint": "https://fcm.googleapis.com/fcm/send/x", "p256dh": keys.p256dh,
         "auth": keys.auth},
    )  # fmt: skip
    assert response.status_code == 403
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://fcm.googleapis.com/fcm/send/x",  # not HTTPS
        "https://127.0.0.1:6379/",  # the operator's own network
        "https://push.example.org/x",  # not a known push service
        "https://fcm.googleapis.com.evil.example/x",
    ],
)
def test_an_endpoint_outside_the_known_push_services_is_refused(user, endpoint):
    keys = BrowserKeys()
    with pytest.raises(services.SubscriptionRefused):
        services.subscription_save(user=user, endpoint=endpoint, p256dh=keys.p256dh, auth=keys.auth)


def test_malformed_keys_are_refused(user):
    response = client_for(user).post(
        "/compte/notifications/appareils/",
        {"endpoint": "https://fcm.googleapis.com/fcm/send/x", "p256dh": "AAAA", "auth": "x"},
    )
    assert response.status_code == 400
    assert "clés" in response.json()["error"]


def test_a_user_removes_their_device_but_not_someone_elses(user):
    other = make_user()
    keys = BrowserKeys()
    mine = services.subscription_save(
        user=user, endpoint="https://fcm.googleapis.com/fcm/send/mine", p256dh=keys.p256dh,
        auth=keys.auth,
    )  # fmt: skip
    theirs = services.subscription_save(
        user=other, endpoint="https://fcm.googleapis.com/fcm/send/theirs", p256dh=keys.p256dh,
        auth=keys.auth,
    )  # fmt: skip
    client = client_for(user)
    assert client.post(f"/compte/notifications/appareils/{theirs.pk}/retirer/").status_code == 404
    assert client.post(f"/compte/notifications/appareils/{mine.pk}/retirer/").status_code == 302
    assert list(PushSubscription.objects.values_list("pk", flat=True)) == [theirs.pk]


def test_the_manifest_describes_the_installable_app(client):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/manifest+json"
    manifest = json.loads(response.content)
    assert manifest["name"] == "mssweb — Messagerie sécurisée de santé"
    assert manifest["short_name"] == "mssweb"
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/messagerie/"
    css = (Path(settings.BASE_DIR) / "static/css/app.css").read_text()
    assert manifest["theme_color"] in css  # the header's colour
    sizes = {(icon["sizes"], icon["purpose"]) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
    for icon in manifest["icons"]:
        path = Path(settings.BASE_DIR) / "static" / icon["src"].removeprefix("/static/")
        width = int.from_bytes(path.read_bytes()[16:20], "big")  # PNG IHDR width
        assert f"{width}x{width}" == icon["sizes"]


def test_the_service_worker_is_served_from_the_root_with_its_shell(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Service-Worker-Allowed"] == "/"
    assert response["Cache-Control"] == "no-cache"
    source = response.content.decode()
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", source).group(1).replace("'", '"'))
    assert "/hors-ligne/" in shell
    assert "/static/css/app.css" in shell
    assert not [url for url in shell if url.startswith("/messagerie")]


def test_the_offline_page_holds_nothing_personal(user):
    client = client_for(user)
    page = client.get("/hors-ligne/").content.decode()
    assert "Pas de connexion" in page
    assert user.email not in page
    assert "csrfmiddlewaretoken" not in page


def test_pages_link_the_manifest_and_the_icons(client):
    page = client.get("/compte/connexion/").content.decode()
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert "apple-touch-icon" in page
    assert 'name="theme-color"' in page


def _send(sender, recipient, *, subject, urgent=False):
    message_send(
        user=sender, mailbox=Mailbox.objects.get(owner=sender),
        to=[Address("", recipient.email)], subject=subject, text="…", urgent=urgent,
    )  # fmt: skip


def test_inbox_title_counts_unread_and_urgent_mail_is_pinned_first(user):
    sender = make_user()
    _send(sender, user, subject="Urgent : résultat critique", urgent=True)
    _send(sender, user, subject="Compte rendu ordinaire")
    _send(sender, user, subject="Invitation au séminaire")
    box = Mailbox.objects.get(owner=user)
    page = client_for(user).get(f"/messagerie/{box.pk}/inbox/").content.decode()
    assert "<title>(3) Boîte de réception · mssweb</title>" in page
    assert '<meta name="mssweb-unread" content="3">' in page
    pinned = page.index('class="urgent-pinned"')
    assert pinned < page.index("Invitation au séminaire")
    assert page.index("résultat critique", pinned) < page.index("Invitation au séminaire")


def test_production_needs_the_vapid_keys(settings):
    settings.DEBUG = settings.TESTING = False
    settings.WEBPUSH_VAPID_PRIVATE_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="WEBPUSH_VAPID_PRIVATE_KEY"):
        conf.vapid_keys()
    settings.WEBPUSH_VAPID_PRIVATE_KEY = conf.new_private_key()
    settings.WEBPUSH_VAPID_PUBLIC_KEY = conf.public_key_of(conf.new_private_key())
    settings.WEBPUSH_VAPID_SUBJECT = "mailto:ops@example.org"
    with pytest.raises(ImproperlyConfigured, match="not the public key"):
        conf.vapid_keys()
    settings.WEBPUSH_VAPID_PUBLIC_KEY = conf.public_key_of(settings.WEBPUSH_VAPID_PRIVATE_KEY)
    assert conf.vapid_keys().subject == "mailto:ops@example.org"


def test_the_development_key_pair_is_kept_private(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.WEBPUSH_VAPID_PRIVATE_KEY = settings.WEBPUSH_VAPID_PUBLIC_KEY = ""
    first = conf.vapid_keys()
    assert (tmp_path / conf.DEV_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert conf.vapid_keys() == first
    assert len(conf.b64url_decode(first.public_key)) == 65


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("+33 7 12 34 56 78", "+33712345678"),
        ("0033612345678", "+33612345678"),
        ("01 23 45 67 89", None),
        ("+44 7700 900123", None),
        ("06 12", None),
    ],
)
def test_phone_numbers_are_french_mobiles_in_e164(text, expected):
    assert normalise_phone(text) == expected


def test_device_and_preference_changes_are_audited_with_the_user_as_actor(user):
    from apps.audit.events import Event
    from apps.audit.models import AuditEvent

    keys = BrowserKeys()
    client = client_for(user, HTTP_USER_AGENT=ANDROID_CHROME)
    client.post(
        "/compte/notifications/appareils/",
        {"endpoint": "https://fcm.googleapis.com/fcm/send/audited", "p256dh": keys.p256dh,
         "auth": keys.auth},
    )  # fmt: skip
    subscription = PushSubscription.objects.get(user=user)
    client.post(f"/compte/notifications/appareils/{subscription.pk}/retirer/")
    client.post(SETTINGS_URL, {"events": "urgent", "push_content": "count", "digest": "immediate"})
    rows = AuditEvent.objects.filter(
        event__in=[Event.NOTIFICATION_DEVICE_ADDED, Event.NOTIFICATION_DEVICE_REMOVED,
                   Event.NOTIFICATION_PREFERENCES_CHANGED]
    ).order_by("id")  # fmt: skip
    assert [(r.event, r.actor_id) for r in rows] == [
        (Event.NOTIFICATION_DEVICE_ADDED, user.pk),
        (Event.NOTIFICATION_DEVICE_REMOVED, user.pk),
        (Event.NOTIFICATION_PREFERENCES_CHANGED, user.pk),
    ]
    assert rows[0].detail["device"] == "Chrome sur Android"


def test_the_offline_page_is_kept_in_the_language_of_the_installing_page(client):
    worker = client.get("/sw.js?lang=en").content.decode()
    assert "const OFFLINE_URL = '/hors-ligne/?lang=en';" in worker
    assert "Pas de connexion" in client.get("/hors-ligne/?lang=fr").content.decode()
    assert "No connection" in client.get("/hors-ligne/?lang=en").content.decode()
    # Anything else is ignored, never reflected.
    assert "OFFLINE_URL = '/hors-ligne/';" in client.get("/sw.js?lang=xx<script>").content.decode()
