import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model

from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.audit.services import record


@pytest.fixture
def admin_request(rf, db):
    def make(**query):
        request = rf.get("/admin/audit/auditevent/", query)
        request.user = get_user_model().objects.create_superuser(
            email=f"root{len(query)}@example.org", password=None
        )
        return request

    return make


@pytest.fixture
def model_admin():
    return admin.site._registry[AuditEvent]


def test_audit_admin_shows_events_but_never_adds_changes_or_deletes(admin_request, model_admin):
    event = record(event=Event.LOGOUT)
    request = admin_request()

    assert model_admin.has_view_permission(request, event)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)
    assert "delete_selected" not in model_admin.get_actions(request)


# The staff search (account, mailbox, Message-ID, event, IP, dates), its exports and their audit
# rows: tests/audit/test_staff_view.py.
