import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model

from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.core.request_meta import RequestMeta


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


@pytest.mark.parametrize(("query", "found"), [("192.0.2.10", 1), ("claire", 2), ("42", 1)])
def test_audit_admin_searches_label_target_and_address(
    admin_request, model_admin, query, found, django_assert_max_num_queries
):
    meta = RequestMeta(ip="192.0.2.10")
    record(event=Event.LOGIN_FAILED, actor_label="claire.morel@example.org", meta=meta)
    record(event=Event.LOGIN_FAILED, actor_label="claire.dupont@example.org")
    record(event=Event.ACCOUNT_UPDATED, target=("accounts.user", 42))
    request = admin_request(q=query)

    with django_assert_max_num_queries(4):
        response = model_admin.changelist_view(request)
        response.render()

    assert response.status_code == 200
    assert response.context_data["cl"].result_count == found
