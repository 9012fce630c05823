"""'Mon activité': the user's logins, security changes and mail actions, newest first, filtered,
keyset-paginated, with unusual logins highlighted; nobody else's."""

import contextlib
import html
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts import services as account_services
from apps.accounts.services import InvalidCredentials
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.audit.selectors import activity_for_user, device_summary
from apps.audit.services import record
from apps.core.request_meta import RequestMeta
from apps.mailbox.models import Mailbox
from apps.mailbox.services import Address, message_send
from tests.conftest import PASSWORD, client_for, make_user

pytestmark = pytest.mark.django_db

URL = "/compte/activite/"
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:135.0) Gecko/20100101 Firefox/135.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1"
)


def password_login(user, *, ip="192.0.2.10", ua=FIREFOX_WINDOWS, password=PASSWORD):
    meta = RequestMeta(ip=ip, user_agent=ua)
    with contextlib.suppress(InvalidCredentials):
        account_services.login_password_check(email=user.email, password=password, meta=meta)


def entries(client, **query):
    response = client.get(URL, query)
    assert response.status_code == 200
    return response, response.context["entries"]


def test_device_summary_names_browser_and_system():
    assert device_summary(FIREFOX_WINDOWS) == "Firefox sur Windows"
    assert device_summary(SAFARI_IPHONE) == "Safari sur iPhone"
    assert device_summary("") == "Appareil inconnu"


def test_logins_and_failures_show_time_address_device_and_outcome_newest_first(alice):
    password_login(alice, ip="192.0.2.10")
    password_login(alice, ip="198.51.100.7", ua=SAFARI_IPHONE, password="wrong")
    response, rows = entries(client_for(alice), type="connexions")
    page = html.unescape(response.content.decode())
    ids = [row.pk for row in rows]
    assert ids == sorted(ids, reverse=True)
    failed = next(row for row in rows if row.event == Event.LOGIN_FAILED)
    assert (failed.ip, failed.device) == ("198.51.100.7", "Safari sur iPhone")
    assert "Échec de connexion (mot de passe)" in page
    assert "Mot de passe accepté" in page
    assert "adresse IP 198.51.100.7" in page
    assert "Safari sur iPhone" in page
    assert "LOGIN_" not in page  # never raw event names


def test_mail_actions_and_security_changes_are_listed_with_their_groups(alice, bob):
    sent = message_send(user=alice, mailbox=Mailbox.objects.get(owner=alice),
                        to=[Address("", bob.email)], subject="Avis", text="x\n")  # fmt: skip
    account_services.backup_codes_regenerate(user=alice, meta=RequestMeta(ip="192.0.2.10"))
    client = client_for(alice)
    _response, mail = entries(client, type="messagerie")
    assert [row.event for row in mail] == [Event.MESSAGE_SENT]
    assert mail[0].message_link == sent.pk
    _response, security = entries(client, type="securite")
    assert Event.BACKUP_CODES_REGENERATED in [row.event for row in security]
    assert all(row.group == "securite" for row in security)
    _response, everything = entries(client)
    assert {Event.MESSAGE_SENT, Event.BACKUP_CODES_REGENERATED, Event.LOGIN_SUCCEEDED} <= {
        row.event for row in everything
    }


def test_staff_actions_on_the_account_appear_as_done_by_the_operator(alice):
    staff = make_user(staff=True)
    account_services.second_factor_reset_by_staff(user=alice, actor=staff)
    rows = activity_for_user(user=alice).entries
    reset = next(row for row in rows if row.event == Event.SECOND_FACTOR_RESET_BY_STAFF)
    assert reset.by_someone_else


def test_nobody_sees_another_users_activity(alice, bob):
    password_login(bob, ip="203.0.113.99")
    response, rows = entries(client_for(alice))
    assert all(
        row.actor_id == alice.pk
        or (row.target_type, row.target_id) == ("accounts.user", str(alice.pk))
        for row in rows
    )
    assert "203.0.113.99" not in response.content.decode()


def test_date_range_filter(alice, monkeypatch):
    long_ago = timezone.now() - timedelta(days=60)
    monkeypatch.setattr(timezone, "now", lambda: long_ago)
    password_login(alice, ip="192.0.2.60")
    monkeypatch.undo()
    client = client_for(alice)
    day = timezone.localdate(long_ago)
    _response, rows = entries(client, date_from=day.isoformat(), date_to=day.isoformat())
    assert [row.ip for row in rows] == ["192.0.2.60"]
    _response, recent = entries(client, date_from=(day + timedelta(days=1)).isoformat())
    assert "192.0.2.60" not in [row.ip for row in recent]
    response = client.get(URL, {"date_from": "2026-02-10", "date_to": "2026-02-01"})
    assert "La date de fin précède la date de début." in response.content.decode()


def test_keyset_pagination_walks_every_row_once(alice):
    for n in range(70):
        record(event=Event.MESSAGE_READ, actor=alice, target=("mailbox.message", n + 1))
    client = client_for(alice)
    response, first = entries(client, type="messagerie")
    assert len(first) == 50
    cursor = response.context["next_cursor"]
    assert cursor == first[-1].pk
    assert f"avant={cursor}" in response.content.decode()
    response, second = entries(client, type="messagerie", avant=cursor)
    assert len(second) == 20
    assert response.context["next_cursor"] is None
    seen = [row.pk for row in first + second]
    assert len(set(seen)) == 70
    assert seen == sorted(seen, reverse=True)


def test_a_login_from_a_new_device_or_address_is_highlighted(alice):
    # make_user made no login yet: the first one is not suspicious.
    password_login(alice, ip="192.0.2.10", ua=FIREFOX_WINDOWS)
    password_login(alice, ip="192.0.2.10", ua=FIREFOX_WINDOWS)
    password_login(alice, ip="192.0.2.10", ua=SAFARI_IPHONE)
    password_login(alice, ip="203.0.113.5", ua=FIREFOX_WINDOWS)
    rows = activity_for_user(user=alice, group="connexions").entries
    logins = [row for row in rows if row.event == Event.LOGIN_SUCCEEDED][::-1]
    assert [row.suspicious for row in logins] == ["", "", "Nouvel appareil", "Nouvelle adresse IP"]


def test_a_device_not_seen_for_more_than_thirty_days_is_new_again(alice, monkeypatch):
    long_ago = timezone.now() - timedelta(days=45)
    monkeypatch.setattr(timezone, "now", lambda: long_ago)
    password_login(alice, ua=SAFARI_IPHONE)
    monkeypatch.undo()
    password_login(alice, ua=FIREFOX_WINDOWS)
    password_login(alice, ua=SAFARI_IPHONE)
    logins = [row for row in activity_for_user(user=alice).entries
              if row.event == Event.LOGIN_SUCCEEDED][::-1]  # fmt: skip
    assert [row.suspicious for row in logins] == ["", "Nouvel appareil", "Nouvel appareil"]


def test_several_failures_in_a_row_are_highlighted(alice):
    password_login(alice)
    password_login(alice, password="wrong")  # one failure alone: not flagged
    password_login(alice)
    for _ in range(3):
        password_login(alice, password="wrong")
    response, rows = entries(client_for(alice), type="connexions")
    failures = [row for row in rows if row.event == Event.LOGIN_FAILED]
    assert [bool(row.suspicious) for row in failures] == [True, True, True, False]
    assert "Plusieurs échecs à la suite" in response.content.decode()
    assert response.content.decode().count("activity-suspicious") >= 3


def test_opening_the_page_is_audited_but_not_listed(alice):
    client = client_for(alice)
    entries(client)
    entries(client)
    assert AuditEvent.objects.filter(event=Event.ACTIVITY_VIEWED, actor=alice).count() == 2
    _response, rows = entries(client)
    assert Event.ACTIVITY_VIEWED not in [row.event for row in rows]


def test_the_page_runs_a_constant_number_of_queries(alice, django_assert_max_num_queries):
    client = client_for(alice)
    for n in range(3):
        password_login(alice, ip=f"192.0.2.{n + 1}")
    client.get(URL)
    with CaptureQueriesContext(connection) as few:
        client.get(URL)
    assert len(few.captured_queries) <= 16, [q["sql"] for q in few.captured_queries]
    for n in range(60):
        password_login(alice, ip=f"198.51.100.{n + 1}", ua=SAFARI_IPHONE if n % 2 else "")
        record(event=Event.MESSAGE_READ, actor=alice, target=("mailbox.message", n + 1))
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(URL)


def test_the_security_page_and_the_menu_link_to_my_activity(alice):
    client = client_for(alice)
    page = client.get("/compte/securite/").content.decode()
    assert 'href="/compte/activite/"' in page
    assert "Voir mon activité" in page


def test_every_event_has_a_french_label():
    from apps.audit.selectors import EVENT_LABELS, event_label

    assert set(EVENT_LABELS) == set(Event), "add the French label of each new event"
    assert event_label(9999) == "Événement n° 9999"
