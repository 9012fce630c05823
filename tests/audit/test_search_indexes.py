"""The staff search and the trace have their indexes (migration 0005), on every database; on
PostgreSQL the search by mailbox has its partial expression index, and the planner uses it."""

import pytest
from django.db import connection
from django.db.models import Q

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the mailbox index exists on PostgreSQL only"
)


def indexes() -> dict:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, AuditEvent._meta.db_table)


def test_target_and_ip_indexes_end_with_the_id_newest_first():
    found = indexes()
    assert found["audit_target_id_desc"]["columns"] == ["target_type", "target_id", "id"]
    assert found["audit_ip_id_desc"]["columns"] == ["ip", "id"]
    assert "audit_target" not in found  # replaced: a prefix of audit_target_id_desc


@on_postgresql
def test_the_search_by_mailbox_can_use_the_partial_expression_index():
    assert "audit_detail_mailbox" in indexes()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is tiny
        plan = (
            AuditEvent.objects.filter(
                Q(target_type="mailbox.mailbox", target_id="7") | Q(detail__mailbox=7)
            )
            .order_by("-id")
            .explain()
        )
    assert "audit_detail_mailbox" in plan
    assert "audit_target_id_desc" in plan
