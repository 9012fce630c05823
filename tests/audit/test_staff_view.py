"""The staff audit view: second factor required, search by account, mailbox, Message-ID, event,
IP and dates, read-only, streamed CSV and JSON exports; searches and exports audited with the
staff member as actor. And the staff's own actions in the admin are recorded with them as actor."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Domain
from apps.audit.events import Event
from apps.audit.exports import export_verify
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.core.request_meta import RequestMeta
from apps.mailbox.models import Mailbox, MailboxKind, MailboxMembership
from apps.mailbox.services import Address, message_send
from apps.trustlist.services import trustlist_import
from tests.conftest import DOMAIN, PASSWORD, login
from tests.trustlist.conftest import SAMPLE

pytestmark = pytest.mark.django_db

URL = "/admin/audit/auditevent/"


@pytest.fixture
def staff_client(staff_user):
    client = Client()
    login(client, staff_user)
    return client


def search(client, **criteria):
    query = {"user": "", "mailbox": "", "message_id": "", "event": "", "ip": "",
             "date_from": "", "date_to": ""} | criteria  # fmt: skip
    response = client.get(URL, query)
    assert response.status_code == 200
    return response.context["rows"]


def test_the_view_needs_staff_with_a_verified_second_factor(client, staff_user, alice):
    client.post("/compte/connexion/", {"email": staff_user.email, "password": PASSWORD})
    assert client.get(URL).status_code == 302  # password only
    assert client.get(URL + "export.csv").status_code == 302
    professional = Client()
    login(professional, alice)
    assert professional.get(URL).status_code == 302
    assert professional.get(URL + "export.json").status_code == 302
    assert not AuditEvent.objects.filter(event=Event.AUDIT_SEARCHED_BY_STAFF).exists()


def test_staff_search_by_account_ip_event_and_dates(staff_client, alice, bob):
    record(event=Event.LOGIN_FAILED, actor=alice, meta=RequestMeta(ip="192.0.2.77"))
    record(event=Event.LOGIN_FAILED, actor=bob, meta=RequestMeta(ip="198.51.100.1"))
    # A failed login typed with an address: found by that address too.
    record(event=Event.LOGIN_FAILED, actor_label="alice.typo@example.org")
    by_alice = search(staff_client, user=alice.email.upper())
    assert {row.actor_id for row in by_alice if row.actor_id} == {alice.pk}
    assert Event.ACCOUNT_CREATED in [row.event for row in by_alice]  # about her account
    assert [row.actor_label for row in search(staff_client, user="alice.typo@example.org")] == [
        "alice.typo@example.org"
    ]
    assert [row.actor_id for row in search(staff_client, ip="192.0.2.77")] == [alice.pk]
    failed = search(staff_client, event=str(int(Event.LOGIN_FAILED)))
    assert len(failed) == 3
    today = timezone.localdate()
    assert len(search(staff_client, event="101", date_from=today, date_to=today)) == 3
    assert search(staff_client, event="101", date_to=today - timedelta(days=1)) == []
    page = staff_client.get(URL, {"ip": "192.0.2.77"}).content.decode()
    assert "Échec de connexion (mot de passe)" in page


def test_staff_search_by_mailbox_and_message_id(staff_client, alice, bob):
    sent = message_send(user=alice, mailbox=Mailbox.objects.get(owner=alice),
                        to=[Address("", bob.email)], subject="x", text="x\n")  # fmt: skip
    rows = search(staff_client, message_id=f"<{sent.message_id}>")
    # Alice's copy sent, Bob's copy delivered: both copies of the Message-ID.
    assert {row.event for row in rows} == {Event.MESSAGE_SENT, Event.MESSAGE_DELIVERED_LOCALLY}
    in_box = search(staff_client, mailbox=bob.email)
    assert [row.event for row in in_box] == [Event.MESSAGE_DELIVERED_LOCALLY]
    assert search(staff_client, mailbox="personne@nulle.part") == []


def test_searches_are_audited_with_the_staff_member_and_criteria(staff_client, staff_user, alice):
    search(staff_client, user=alice.email, ip="192.0.2.1")
    row = AuditEvent.objects.get(event=Event.AUDIT_SEARCHED_BY_STAFF)
    assert row.actor_id == staff_user.pk
    assert row.detail == {"criteria": {"user": alice.email, "ip": "192.0.2.1"}}
    # Opening the page without searching is not a search.
    staff_client.get(URL)
    assert AuditEvent.objects.filter(event=Event.AUDIT_SEARCHED_BY_STAFF).count() == 1


def test_bad_criteria_are_refused_in_french(staff_client):
    response = staff_client.get(URL, {"ip": "not an ip", "date_from": "2026-02-02",
                                      "date_to": "2026-02-01"})  # fmt: skip
    page = response.content.decode()
    assert "Saisissez une adresse IPv4 ou IPv6 valide." in page
    assert "La date de fin précède la date de début." in page


def test_the_view_is_read_only(staff_client, alice):
    row = AuditEvent.objects.filter(target_id=str(alice.pk)).first()
    assert staff_client.get(f"{URL}add/").status_code == 403
    assert staff_client.get(f"{URL}{row.pk}/change/").status_code == 200  # read-only form
    response = staff_client.post(f"{URL}{row.pk}/change/", {"actor_label": "x"})
    assert response.status_code == 403
    assert staff_client.post(f"{URL}{row.pk}/delete/").status_code == 403
    row.refresh_from_db()
    assert row.actor_label != "x"


def test_csv_export_is_streamed_audited_and_safe_for_spreadsheets(staff_client, staff_user, alice):
    record(
        event=Event.LOGIN_FAILED, actor_label="=cmd|'/c calc'!A1", meta=RequestMeta(ip="192.0.2.9")
    )
    response = staff_client.get(URL + "export.csv", {"ip": "192.0.2.9"})
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"].startswith('attachment; filename="journal-audit-')
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1
    assert rows[0]["actor_label"] == "'=cmd|'/c calc'!A1"
    assert rows[0]["event_label"] == "Échec de connexion (mot de passe)"
    assert len(rows[0]["row_hash"]) == 64
    exported = AuditEvent.objects.get(event=Event.AUDIT_EXPORTED_BY_STAFF)
    assert exported.actor_id == staff_user.pk
    assert exported.detail == {"criteria": {"ip": "192.0.2.9"}, "format": "csv"}


def test_json_export_is_streamed_and_verifies_against_the_chain(staff_client, alice):
    for n in range(5):
        record(event=Event.MESSAGE_READ, actor=alice, target=("mailbox.message", n + 1))
    response = staff_client.get(URL + "export.json", {"user": alice.email})
    assert isinstance(response, StreamingHttpResponse)
    data = json.loads(b"".join(response.streaming_content))
    assert data["criteria"] == {"user": alice.email}
    assert len([row for row in data["rows"] if row["event"] == Event.MESSAGE_READ]) == 5
    check = export_verify(data)
    assert check.ok, check.problems
    data["rows"][0]["target_id"] = "999"
    assert not export_verify(data).ok


def test_pagination_is_keyset(staff_client, alice):
    for n in range(120):
        record(event=Event.MESSAGE_READ, actor=alice, target=("mailbox.message", n + 1))
    response = staff_client.get(URL, {"event": "502"})
    first = response.context["rows"]
    assert len(first) == 100
    cursor = response.context["next_cursor"]
    second = staff_client.get(URL, {"event": "502", "avant": cursor}).context["rows"]
    assert len(second) == 20
    assert not {row.pk for row in first} & {row.pk for row in second}


# --- Staff actions in the admin are recorded with the staff member as actor ---------------------


def test_domain_settings_changed_by_staff(staff_client, staff_user):
    response = staff_client.post("/admin/accounts/domain/add/", {
        "name": "nouveau.mssante.fr", "description": "Nouveau", "is_active": "on",
        "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
    })  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    domain = Domain.objects.get(name="nouveau.mssante.fr")
    added = AuditEvent.objects.get(event=Event.SETTINGS_CHANGED_BY_STAFF)
    assert (added.actor_id, added.target_type, added.target_id) == (
        staff_user.pk,
        "accounts.domain",
        str(domain.pk),
    )
    assert added.detail["action"] == "added"
    staff_client.post(f"/admin/accounts/domain/{domain.pk}/change/", {
        "name": "nouveau.mssante.fr", "description": "Nouveau", "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
    })  # fmt: skip
    changed = AuditEvent.objects.filter(event=Event.SETTINGS_CHANGED_BY_STAFF).latest("id")
    assert changed.detail["action"] == "changed"
    assert "is_active" in changed.detail["fields"]
    assert changed.actor_id == staff_user.pk


def test_mailbox_settings_and_membership_changed_by_staff(staff_client, staff_user, alice, bob):
    shared = Mailbox.objects.create(
        address=f"accueil@{DOMAIN}", kind=MailboxKind.ORGANISATIONAL,
        domain=Domain.objects.get(name=DOMAIN), display_name="Accueil",
    )  # fmt: skip
    MailboxMembership.objects.create(mailbox=shared, user=alice)
    membership = MailboxMembership.objects.get(mailbox=shared, user=alice)
    response = staff_client.post(f"/admin/mailbox/mailbox/{shared.pk}/change/", {
        "display_name": "Accueil du cabinet", "owner": "", "quota_bytes": "",
        "created_at_0": timezone.localtime(shared.created_at).strftime("%d/%m/%Y"),
        "created_at_1": timezone.localtime(shared.created_at).strftime("%H:%M:%S"),
        "memberships-TOTAL_FORMS": "2", "memberships-INITIAL_FORMS": "1",
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": str(membership.pk), "memberships-0-mailbox": str(shared.pk),
        "memberships-0-user": str(alice.pk), "memberships-0-granted_at_0": "01/01/2026",
        "memberships-0-granted_at_1": "00:00:00", "memberships-0-DELETE": "on",
        "memberships-1-mailbox": str(shared.pk), "memberships-1-user": str(bob.pk),
        "memberships-1-granted_at_0": "01/01/2026", "memberships-1-granted_at_1": "00:00:00",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert list(shared.memberships.values_list("user_id", flat=True)) == [bob.pk]
    settings_row = AuditEvent.objects.get(event=Event.SETTINGS_CHANGED_BY_STAFF)
    assert settings_row.actor_id == staff_user.pk
    assert settings_row.detail["action"] == "changed"
    assert "display_name" in settings_row.detail["fields"]
    membership_row = AuditEvent.objects.get(event=Event.MAILBOX_MEMBERSHIP_CHANGED)
    assert membership_row.actor_id == staff_user.pk
    assert membership_row.detail == {"added": [bob.pk], "removed": [alice.pk]}


def test_account_changes_by_staff_name_the_staff_member(staff_client, staff_user, alice):
    staff_client.post(
        "/admin/accounts/user/", {"action": "suspend", "_selected_action": [alice.pk]}
    )
    staff_client.post(
        "/admin/accounts/user/", {"action": "reset_second_factor", "_selected_action": [alice.pk]}
    )
    for event in (Event.ACCOUNT_SUSPENDED, Event.SECOND_FACTOR_RESET_BY_STAFF):
        row = AuditEvent.objects.get(event=event)
        assert (row.actor_id, row.target_id) == (staff_user.pk, str(alice.pk))


def test_a_trust_list_import_by_staff_names_them(staff_user):
    trustlist_import(source=str(SAMPLE), actor=staff_user)
    row = AuditEvent.objects.get(event=Event.TRUSTLIST_IMPORTED)
    assert row.actor_id == staff_user.pk
