"""A login that looks unusual (new device, new address, failures before it) is told to the user
by e-mail once the second factor succeeded, unless they turned the notice off."""

import pytest
from django.core import mail
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import tasks
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.notifications.models import NotificationPreference
from tests.conftest import PASSWORD, totp_code

pytestmark = pytest.mark.django_db

FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)


@pytest.fixture
def log_in(client, django_capture_on_commit_callbacks):
    """The real two-step login from a given browser and address, on-commit tasks run (Celery
    is eager in tests), then logged out again."""

    def run(user, *, ip="192.0.2.10", agent=FIREFOX_WINDOWS, bad_passwords=0):
        headers = {"REMOTE_ADDR": ip, "HTTP_USER_AGENT": agent}
        for _ in range(bad_passwords):
            client.post(
                "/compte/connexion/", {"email": user.email, "password": "wrong!"}, **headers
            )
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/compte/connexion/", {"email": user.email, "password": PASSWORD}, **headers
            )
            assert response.status_code == 302
            device = TOTPDevice.objects.get(user=user, confirmed=True)
            response = client.post(
                "/compte/connexion/code/", {"code": totp_code(device)}, **headers
            )
            assert response["Location"] == "/"
        client.post("/compte/deconnexion/", **headers)

    return run


def notices():
    return list(
        AuditEvent.objects.filter(event=Event.SUSPICIOUS_LOGIN_NOTIFIED).order_by("link__seq")
    )


def test_login_from_a_new_device_sends_one_notice_and_records_it(user, log_in):
    log_in(user)  # the account's first login: nothing to compare with, no notice
    assert mail.outbox == []
    log_in(user, ip="198.51.100.7", agent=CHROME_ANDROID)

    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == [user.email]
    assert "connexion inhabituelle" in sent.subject
    assert "198.51.100.7" in sent.body
    assert "Chrome sur Android" in sent.body
    assert "Nouvel appareil" in sent.body
    assert "/compte/activite/" in sent.body
    assert "/compte/sessions/" in sent.body
    assert "mot de passe" in sent.body
    # The raw user agent is not repeated whole.
    assert CHROME_ANDROID not in sent.body

    [row] = notices()
    assert row.actor_id == user.pk
    assert row.detail == {"reason": "new_device"}
    login = AuditEvent.objects.filter(actor=user, event=Event.LOGIN_SUCCEEDED).latest()
    assert (row.target_type, row.target_id) == ("audit.auditevent", str(login.pk))
    assert row.ip == "198.51.100.7"


def test_usual_login_sends_nothing(user, log_in):
    log_in(user)
    log_in(user)
    log_in(user)
    assert mail.outbox == []
    assert notices() == []


def test_new_address_on_a_known_device_is_unusual(user, log_in):
    log_in(user)
    log_in(user, ip="203.0.113.99")
    assert len(mail.outbox) == 1
    assert "Nouvelle adresse IP" in mail.outbox[0].body
    assert notices()[0].detail == {"reason": "new_ip"}


def test_failures_before_a_usual_login_are_unusual(user, log_in):
    log_in(user)
    log_in(user, bad_passwords=3)
    assert len(mail.outbox) == 1
    assert "Plusieurs échecs" in mail.outbox[0].body
    assert notices()[0].detail == {"reason": "failures"}
    # One failure is a typo, not a reason to worry.
    log_in(user, bad_passwords=1)
    assert len(mail.outbox) == 1


def test_no_notice_when_the_user_turned_it_off(user, log_in):
    NotificationPreference.objects.create(user=user, suspicious_login_email=False)
    log_in(user)
    log_in(user, ip="198.51.100.7", agent=CHROME_ANDROID)
    assert mail.outbox == []
    assert notices() == []


def test_a_task_delivered_twice_tells_the_user_once(user, log_in):
    log_in(user)
    log_in(user, ip="198.51.100.7", agent=CHROME_ANDROID)
    completed = AuditEvent.objects.filter(actor=user, event=Event.SECOND_FACTOR_SUCCEEDED).latest()
    tasks.notify_suspicious_login(user.pk, completed.pk)
    assert len(mail.outbox) == 1
    assert len(notices()) == 1


def test_the_notice_shows_in_my_activity(user, log_in, client):
    log_in(user)
    log_in(user, ip="198.51.100.7", agent=CHROME_ANDROID)
    from tests.conftest import login

    login(client, user)
    page = client.get("/compte/activite/").content.decode()
    assert "Avis de connexion inhabituelle envoyé" in page


def test_settings_page_has_the_checkbox_and_saves_it(logged_in_client):
    page = logged_in_client.get("/compte/notifications/")
    html = page.content.decode()
    assert 'name="suspicious_login_email"' in html
    assert "checked" in html.split('name="suspicious_login_email"')[1].split(">")[0]
    response = logged_in_client.post(
        "/compte/notifications/",
        {"events": "all", "push_content": "sender", "digest": "immediate"},
    )
    assert response.status_code == 302
    preference = NotificationPreference.objects.get(user=logged_in_client.user)
    assert preference.suspicious_login_email is False
