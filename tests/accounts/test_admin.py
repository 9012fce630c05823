import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import BackupCodeDevice, User
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from tests.conftest import PASSWORD, login, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff_user):
    client = Client()
    login(client, staff_user)
    return client


def test_admin_refused_with_password_only(client, staff_user):
    client.post(reverse("accounts:login"), {"email": staff_user.email, "password": PASSWORD})
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("accounts:login"))
    assert response.status_code == 200
    assert response.templates[0].name == "accounts/login.html"


def test_admin_refused_to_non_staff(logged_in_client):
    response = logged_in_client.get("/admin/")
    assert response.status_code == 302
    assert logged_in_client.get(response["Location"])["Location"] == "/"


def test_admin_open_to_verified_staff(staff_client):
    assert staff_client.get("/admin/").status_code == 200
    page = staff_client.get("/admin/accounts/user/?q=Morel")
    assert page.status_code == 200


def test_staff_cannot_see_authenticator_secrets(staff_client):
    assert staff_client.get("/admin/otp_totp/totpdevice/").status_code == 404


def test_staff_suspend_and_reactivate_are_audited(staff_client, staff_user, user):
    victim = Client()
    login(victim, user)
    response = staff_client.post(
        "/admin/accounts/user/", {"action": "suspend", "_selected_action": [user.pk]}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.is_active
    assert victim.get("/").status_code == 302
    event = AuditEvent.objects.get(event=Event.ACCOUNT_SUSPENDED)
    assert event.actor == staff_user
    assert event.target_id == str(user.pk)
    staff_client.post(
        "/admin/accounts/user/", {"action": "reactivate", "_selected_action": [user.pk]}
    )
    user.refresh_from_db()
    assert user.is_active
    assert AuditEvent.objects.filter(event=Event.ACCOUNT_REACTIVATED, actor=staff_user).exists()


def test_staff_reset_of_second_factor(
    staff_client, staff_user, user, django_capture_on_commit_callbacks
):
    victim = Client()
    login(victim, user)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            "/admin/accounts/user/",
            {"action": "reset_second_factor", "_selected_action": [user.pk]},
        )
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not BackupCodeDevice.objects.filter(user=user).exists()
    assert victim.get("/").status_code == 302
    assert AuditEvent.objects.filter(
        event=Event.SECOND_FACTOR_RESET_BY_STAFF, actor=staff_user, target_id=str(user.pk)
    ).exists()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [user.email]
    assert "réinitialisé" in mail.outbox[0].subject
    # Next login leads through enrolment.
    response = victim.post(reverse("accounts:login"), {"email": user.email, "password": PASSWORD})
    assert response["Location"] == reverse("accounts:enrol")


def test_staff_creates_an_account_which_gets_a_set_password_mail(
    staff_client, staff_user, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/accounts/user/add/",
            {
                "email": "Nouveau.Confrere@test.mssante.fr",
                "civility": "DR",
                "first_name": "Nouveau",
                "last_name": "Confrère",
                "idnat": "810001045367",
                "profession_code": "40",
                "specialty_code": "",
                "phone": "",
            },
        )
    assert response.status_code == 302, response.content[:2000]
    user = User.objects.get(email="nouveau.confrere@test.mssante.fr")
    assert not user.has_usable_password()
    assert user.owned_mailboxes.get().address == user.email
    assert AuditEvent.objects.filter(event=Event.ACCOUNT_CREATED, actor=staff_user).exists()
    assert len(mail.outbox) == 1
    assert "/compte/mot-de-passe-oublie/" in mail.outbox[0].body


def test_admin_refuses_a_bad_idnat(staff_client):
    response = staff_client.post(
        "/admin/accounts/user/add/",
        {
            "email": "x@test.mssante.fr",
            "first_name": "X",
            "last_name": "Y",
            "idnat": "810001045368",
            "profession_code": "40",
        },
    )
    assert response.status_code == 200
    assert "clé de contrôle" in response.content.decode()


def test_accounts_cannot_be_deleted_from_admin(staff_client, user):
    assert staff_client.get(f"/admin/accounts/user/{user.pk}/delete/").status_code == 403


def test_make_user_helper_makes_distinct_people(db):
    assert make_user().idnat != make_user().idnat
