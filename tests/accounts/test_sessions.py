from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts import services
from apps.accounts.middleware import AUTH_AT_KEY, SEEN_AT_KEY
from apps.accounts.models import SessionEndReason, UserSession
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from tests.conftest import PASSWORD, login

pytestmark = pytest.mark.django_db


def _age_session(client, *, auth_ago=None, seen_ago=None):
    session = client.session
    now = timezone.now()
    if auth_ago is not None:
        session[AUTH_AT_KEY] = (now - auth_ago).timestamp()
    if seen_ago is not None:
        session[SEEN_AT_KEY] = (now - seen_ago).timestamp()
    session.save()


def test_idle_session_expires_with_a_reason(logged_in_client):
    _age_session(logged_in_client, seen_ago=timedelta(minutes=31))
    response = logged_in_client.get("/")
    assert response["Location"].startswith(reverse("accounts:login"))
    user_session = UserSession.objects.get(user=logged_in_client.user)
    assert user_session.end_reason == SessionEndReason.IDLE
    assert AuditEvent.objects.filter(event=Event.SESSION_EXPIRED).exists()
    assert logged_in_client.get("/").status_code == 302


def test_session_ends_after_absolute_lifetime_even_when_active(logged_in_client):
    _age_session(logged_in_client, auth_ago=timedelta(hours=12, minutes=1))
    assert logged_in_client.get("/").status_code == 302
    assert UserSession.objects.get().end_reason == SessionEndReason.ABSOLUTE


def test_activity_keeps_the_session_alive(logged_in_client):
    _age_session(logged_in_client, seen_ago=timedelta(minutes=29))
    assert logged_in_client.get("/").status_code == 200
    assert logged_in_client.get("/").status_code == 200


def test_sessions_page_lists_and_revokes_another_session(user):
    phone, desk = Client(HTTP_USER_AGENT="Phone"), Client(HTTP_USER_AGENT="Desk")
    login(phone, user)
    login(desk, user)
    page = desk.get(reverse("accounts:sessions"))
    assert page.status_code == 200
    assert "Phone" in page.content.decode()
    phone_session = UserSession.objects.get(user_agent="Phone")
    response = desk.post(reverse("accounts:session_revoke", args=[phone_session.public_id]))
    assert response.status_code == 302
    assert phone.get("/").status_code == 302
    assert desk.get("/").status_code == 200
    phone_session.refresh_from_db()
    assert phone_session.end_reason == SessionEndReason.REVOKED
    assert AuditEvent.objects.filter(event=Event.SESSION_REVOKED).count() == 1


def test_cannot_revoke_someone_elses_session(user):
    from tests.conftest import make_user

    other = make_user()
    mine, theirs = Client(), Client()
    login(mine, user)
    login(theirs, other)
    their_session = UserSession.objects.get(user=other)
    response = mine.post(reverse("accounts:session_revoke", args=[their_session.public_id]))
    assert response.status_code == 404
    assert theirs.get("/").status_code == 200


def test_log_out_all_other_sessions(user):
    clients = [Client(), Client(), Client()]
    for client in clients:
        login(client, user)
    clients[0].post(reverse("accounts:sessions_revoke_others"))
    assert [c.get("/").status_code for c in clients] == [200, 302, 302]


def test_logout_ends_the_session(logged_in_client):
    response = logged_in_client.post(reverse("accounts:logout"))
    assert response["Location"] == reverse("accounts:login")
    assert logged_in_client.get("/").status_code == 302
    assert UserSession.objects.get().end_reason == SessionEndReason.LOGOUT
    assert not Session.objects.exists()
    assert AuditEvent.objects.filter(event=Event.LOGOUT).exists()


def test_logout_requires_post(logged_in_client):
    assert logged_in_client.get(reverse("accounts:logout")).status_code == 405


def test_password_change_logs_out_other_sessions(user):
    here, elsewhere = Client(), Client()
    login(here, user)
    login(elsewhere, user)
    new_password = "une nouvelle phrase de passe"
    response = here.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )
    assert response.status_code == 302
    assert here.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302
    user.refresh_from_db()
    assert user.check_password(new_password)
    assert AuditEvent.objects.filter(event=Event.PASSWORD_CHANGED).exists()
    # The current session still appears, under its new key.
    assert UserSession.objects.filter(user=user, ended_at__isnull=True).count() == 1
    assert here.get(reverse("accounts:sessions")).context["sessions"][0].session_key == (
        here.session.session_key
    )


def test_sessions_cleanup_ends_forgotten_sessions(logged_in_client):
    UserSession.objects.update(last_seen_at=timezone.now() - timedelta(hours=1))
    assert services.sessions_cleanup() == 1
    assert UserSession.objects.get().end_reason == SessionEndReason.IDLE
    assert logged_in_client.get("/").status_code == 302
