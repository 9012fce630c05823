from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import AuthFailure, UserSession
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from tests.conftest import PASSWORD, login, make_user, totp_code

pytestmark = pytest.mark.django_db

LOGIN = "/compte/connexion/"
VERIFY = "/compte/connexion/code/"


def events(user=None):
    qs = AuditEvent.objects.order_by("id")
    if user is not None:
        qs = qs.filter(actor=user)
    return [Event(e) for e in qs.values_list("event", flat=True)]


def test_login_needs_password_then_code(client, user):
    response = client.post(LOGIN, {"email": user.email.upper(), "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:verify")
    # Half-way: still anonymous, the home page sends back to the login page.
    assert client.get("/")["Location"].startswith(LOGIN)

    device = TOTPDevice.objects.get(user=user)
    response = client.post(VERIFY, {"code": totp_code(device)})
    assert response.status_code == 302
    assert response["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert user.email in home.content.decode()
    assert events(user)[-2:] == [Event.LOGIN_SUCCEEDED, Event.SECOND_FACTOR_SUCCEEDED]
    assert UserSession.objects.filter(user=user, ended_at__isnull=True).count() == 1


def test_session_key_changes_at_password_and_at_code(client, user):
    client.get(LOGIN)
    client.cookies["mssweb_session"] = "x" * 32
    client.post(LOGIN, {"email": user.email, "password": PASSWORD})
    after_password = client.cookies["mssweb_session"].value
    assert after_password != "x" * 32
    client.post(VERIFY, {"code": totp_code(TOTPDevice.objects.get(user=user))})
    assert client.cookies["mssweb_session"].value != after_password


def test_wrong_password_and_unknown_address_get_the_same_answer(client, user):
    wrong = client.post(LOGIN, {"email": user.email, "password": "not the password!"})
    unknown = client.post(LOGIN, {"email": "nobody@test.mssante.fr", "password": "whatever12345"})
    assert wrong.status_code == unknown.status_code == 400
    assert "Adresse ou mot de passe incorrect." in wrong.content.decode()
    assert "Adresse ou mot de passe incorrect." in unknown.content.decode()
    assert events().count(Event.LOGIN_FAILED) == 2


def test_suspended_account_cannot_log_in(client, user):
    user.is_active = False
    user.save()
    response = client.post(LOGIN, {"email": user.email, "password": PASSWORD})
    assert response.status_code == 400


def test_wrong_code_is_refused_and_recorded(client, user):
    client.post(LOGIN, {"email": user.email, "password": PASSWORD})
    device = TOTPDevice.objects.get(user=user)
    good = totp_code(device)
    bad = f"{(int(good) + 1) % 1_000_000:06d}"
    response = client.post(VERIFY, {"code": bad})
    assert response.status_code == 400
    assert "Code incorrect" in response.content.decode()
    assert client.get("/").status_code == 302
    assert Event.SECOND_FACTOR_FAILED in events(user)
    # The right code, typed at once after the typo, is accepted.
    assert client.post(VERIFY, {"code": good})["Location"] == "/"


def test_a_code_cannot_be_replayed(client, user):
    device = TOTPDevice.objects.get(user=user)
    code = totp_code(device)
    assert login(client, user, code=code)["Location"] == "/"
    client.post(reverse("accounts:logout"))
    client.post(LOGIN, {"email": user.email, "password": PASSWORD})
    response = client.post(VERIFY, {"code": code})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_backup_code_logs_in_once(client):
    user = make_user(enrolled=False)
    client.post(LOGIN, {"email": user.email, "password": PASSWORD})
    client.get(reverse("accounts:enrol"))
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(reverse("accounts:enrol"), {"code": totp_code(device)})
    codes = response.context["codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    client.post(reverse("accounts:logout"))

    client.post(LOGIN, {"email": user.email, "password": PASSWORD})
    assert client.post(VERIFY, {"code": codes[3].upper()})["Location"] == "/"
    assert Event.BACKUP_CODE_USED in events(user)
    client.post(reverse("accounts:logout"))

    client.post(LOGIN, {"email": user.email, "password": PASSWORD})
    assert client.post(VERIFY, {"code": codes[3]}).status_code == 400


def test_first_login_leads_through_enrolment(client):
    user = make_user(enrolled=False)
    response = client.post(LOGIN, {"email": user.email, "password": PASSWORD})
    assert response["Location"] == reverse("accounts:enrol")
    page = client.get(reverse("accounts:enrol"))
    html = page.content.decode()
    assert "<svg" in html
    assert "otpauth://totp/" in html
    # Reloading keeps the same secret (the phone may already have scanned it).
    assert (
        client.get(reverse("accounts:enrol")).context["secret_groups"]
        == page.context["secret_groups"]
    )
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert client.post(reverse("accounts:enrol"), {"code": "000000"}).status_code == 400
    response = client.post(reverse("accounts:enrol"), {"code": totp_code(device)})
    assert response.status_code == 200
    assert len(response.context["codes"]) == 10
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/").status_code == 200
    assert Event.SECOND_FACTOR_ENROLLED in events(user)


def test_enrolled_user_cannot_enrol_again_without_the_code(client, user):
    client.post(LOGIN, {"email": user.email, "password": PASSWORD})
    assert client.get(reverse("accounts:enrol"))["Location"] == reverse("accounts:verify")


def test_pending_login_expires(client, user, settings):
    settings.LOGIN_PENDING_TIMEOUT = timedelta(seconds=-1)
    client.post(LOGIN, {"email": user.email, "password": PASSWORD})
    response = client.post(VERIFY, {"code": totp_code(TOTPDevice.objects.get(user=user))})
    assert response["Location"] == LOGIN


def test_next_is_followed_only_within_the_site(client, user):
    client.post(LOGIN + "?next=/compte/securite/", {"email": user.email, "password": PASSWORD})
    response = client.post(VERIFY, {"code": totp_code(TOTPDevice.objects.get(user=user))})
    assert response["Location"] == "/compte/securite/"
    client.post(reverse("accounts:logout"))
    client.post(LOGIN, {"email": user.email, "password": PASSWORD, "next": "https://evil.example/"})
    response = client.post(VERIFY, {"code": totp_code(TOTPDevice.objects.get(user=user))})
    assert response["Location"] == "/"


class TestThrottling:
    def test_five_failures_lock_the_address_and_account_pair(self, client, user):
        for _ in range(5):
            client.post(LOGIN, {"email": user.email, "password": "wrong password 123"})
        response = client.post(LOGIN, {"email": user.email, "password": PASSWORD})
        assert response.status_code == 429
        assert "Trop de tentatives" in response.content.decode()
        assert Event.LOGIN_THROTTLED in events(user)

    def test_lock_does_not_reach_the_user_at_another_address(self, client, user):
        for _ in range(5):
            client.post(LOGIN, {"email": user.email, "password": "wrong"}, REMOTE_ADDR="10.9.9.9")
        response = client.post(LOGIN, {"email": user.email, "password": PASSWORD})
        assert response.status_code == 302

    def test_lock_ends_with_the_window(self, client, user):
        for _ in range(5):
            client.post(LOGIN, {"email": user.email, "password": "wrong password 123"})
        AuthFailure.objects.update(created_at=timezone.now() - timedelta(minutes=16))
        assert client.post(LOGIN, {"email": user.email, "password": PASSWORD}).status_code == 302

    def test_unknown_addresses_are_locked_the_same_way(self, client, db):
        for _ in range(5):
            client.post(LOGIN, {"email": "ghost@test.mssante.fr", "password": "wrong"})
        response = client.post(LOGIN, {"email": "ghost@test.mssante.fr", "password": "wrong"})
        assert response.status_code == 429

    def test_distributed_attack_locks_account_but_not_the_users_own_browser(
        self, client, user, settings
    ):
        settings.THROTTLE_MAX_PER_ACCOUNT = 6
        login(client, user)  # this browser now holds the device cookie
        client.post(reverse("accounts:logout"))
        for n in range(6):
            client.post(
                LOGIN, {"email": user.email, "password": "wrong"}, REMOTE_ADDR=f"10.0.0.{n}"
            )
        from django.test import Client

        stranger = Client(REMOTE_ADDR="10.1.1.1")
        assert stranger.post(LOGIN, {"email": user.email, "password": PASSWORD}).status_code == 429
        assert client.post(LOGIN, {"email": user.email, "password": PASSWORD}).status_code == 302

    def test_too_many_wrong_codes_end_the_pending_login(self, client, user):
        client.post(LOGIN, {"email": user.email, "password": PASSWORD})
        for _ in range(5):
            client.post(VERIFY, {"code": "000000"})
        response = client.post(VERIFY, {"code": "000000"})
        assert response["Location"] == LOGIN
        assert client.get(VERIFY)["Location"] == LOGIN
