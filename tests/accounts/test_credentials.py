import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import BackupCode
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from tests.conftest import PASSWORD, login, totp_code

pytestmark = pytest.mark.django_db


def test_security_page_shows_the_state_of_the_factors(logged_in_client):
    page = logged_in_client.get(reverse("accounts:security"))
    assert page.status_code == 200
    assert page.context["totp_device"] is not None
    assert page.context["active_sessions"] == 1


def test_regenerating_backup_codes_shows_ten_new_ones_once(logged_in_client):
    user = logged_in_client.user
    first = logged_in_client.post(reverse("accounts:backup_codes")).context["codes"]
    second = logged_in_client.post(reverse("accounts:backup_codes")).context["codes"]
    assert len(first) == len(second) == 10
    assert not set(first) & set(second)
    assert BackupCode.objects.filter(device__user=user).count() == 10
    assert not any(code in str(BackupCode.objects.values_list("code_hash")) for code in second)
    assert AuditEvent.objects.filter(event=Event.BACKUP_CODES_REGENERATED).count() == 2
    # The old codes no longer work, the new ones do.
    other = Client()
    other.post(reverse("accounts:login"), {"email": user.email, "password": PASSWORD})
    assert other.post(reverse("accounts:verify"), {"code": first[0]}).status_code == 400
    assert other.post(reverse("accounts:verify"), {"code": second[0]})["Location"] == "/"


def test_backup_code_regeneration_requires_post(logged_in_client):
    assert logged_in_client.get(reverse("accounts:backup_codes")).status_code == 405


def test_re_enrolment_replaces_the_authenticator(logged_in_client):
    user = logged_in_client.user
    old = TOTPDevice.objects.get(user=user, confirmed=True)
    page = logged_in_client.get(reverse("accounts:reenrol"))
    assert page.status_code == 200
    new = TOTPDevice.objects.get(user=user, confirmed=False)
    response = logged_in_client.post(reverse("accounts:reenrol"), {"code": totp_code(new)})
    # This provisioned account had no backup codes yet: they are made and shown once.
    assert response.status_code == 200
    assert len(response.context["codes"]) == 10
    assert response.context["continue_url"] == reverse("accounts:security")
    assert list(TOTPDevice.objects.filter(user=user).values_list("pk", flat=True)) == [new.pk]
    assert not TOTPDevice.objects.filter(pk=old.pk).exists()
    # Still logged in, now verified by the new device.
    assert logged_in_client.get("/").status_code == 200
    assert AuditEvent.objects.filter(
        event=Event.SECOND_FACTOR_ENROLLED, detail__re_enrolment=True
    ).exists()


def test_re_enrolment_with_a_wrong_code_keeps_the_old_authenticator(logged_in_client):
    user = logged_in_client.user
    old = TOTPDevice.objects.get(user=user, confirmed=True)
    logged_in_client.get(reverse("accounts:reenrol"))
    new = TOTPDevice.objects.get(user=user, confirmed=False)
    good = totp_code(new)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    response = logged_in_client.post(reverse("accounts:reenrol"), {"code": wrong})
    assert response.status_code == 400
    assert TOTPDevice.objects.get(user=user, confirmed=True).pk == old.pk


def test_password_reset_by_email_still_asks_for_the_second_factor(
    client, user, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    response = client.post(reverse("accounts:password_reset"), {"email": user.email.upper()})
    assert response["Location"] == reverse("accounts:password_reset_done")
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/compte/mot-de-passe-oublie/\S+/", mail.outbox[0].body)[0]
    path = link.split("://", 1)[1].split("/", 1)[1]
    form = client.get("/" + path, follow=True)
    assert form.status_code == 200
    assert form.context["validlink"]
    new_password = "une toute nouvelle phrase"
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password}
    )
    assert done["Location"] == reverse("accounts:password_reset_complete")
    # Not logged in by the reset: password, then the code.
    assert client.get("/").status_code == 302
    response = client.post(
        reverse("accounts:login"), {"email": user.email, "password": new_password}
    )
    assert response["Location"] == reverse("accounts:verify")
    assert AuditEvent.objects.filter(event=Event.PASSWORD_RESET_COMPLETED, actor=user).exists()


def test_password_reset_ends_open_sessions(client, user):
    elsewhere = Client()
    login(elsewhere, user)
    client.post(reverse("accounts:password_reset"), {"email": user.email})
    link = re.search(r"/compte/mot-de-passe-oublie/\S+/", mail.outbox[-1].body)[0]
    form_url = client.get(link, follow=True).redirect_chain[-1][0]
    client.post(
        form_url,
        {"new_password1": "phrase de passe neuve", "new_password2": "phrase de passe neuve"},
    )
    assert elsewhere.get("/").status_code == 302


def test_password_reset_for_an_unknown_address_looks_the_same(client, db):
    mail.outbox.clear()
    response = client.post(reverse("accounts:password_reset"), {"email": "ghost@test.mssante.fr"})
    assert response["Location"] == reverse("accounts:password_reset_done")
    assert mail.outbox == []


def test_reset_link_works_once(client, user):
    client.post(reverse("accounts:password_reset"), {"email": user.email})
    link = re.search(r"/compte/mot-de-passe-oublie/\S+/", mail.outbox[-1].body)[0]
    form_url = client.get(link, follow=True).redirect_chain[-1][0]
    client.post(
        form_url,
        {"new_password1": "phrase de passe neuve", "new_password2": "phrase de passe neuve"},
    )
    again = Client().get(link, follow=True)
    assert not again.context["validlink"]
