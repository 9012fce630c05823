"""Migration 0007 moves the chain's links out of the event rows: the chain verifies the same
afterwards (same seq and hashes), an event left unsealed before gets sealed after, and going back
puts the links in the event rows again. On SQLite and PostgreSQL."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.audit.chain import GENESIS_HASH, compute_row_hash
from apps.audit.events import Event
from apps.audit.integrity import chain_verify
from apps.audit.models import AuditEvent, AuditSealState
from apps.audit.services import seal

BEFORE = [("audit", "0006_unsealed_events")]
AFTER = [("audit", "0007_audit_links")]
WHEN = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
INSERT = (
    "INSERT INTO audit_auditevent (id, seq, created_at, event, actor_ref, actor_label, ip, "
    "user_agent, target_type, target_id, detail, prev_hash, row_hash) "
    "VALUES (%s, %s, %s, %s, '', %s, NULL, '', '', '', '{}', %s, %s)"
)


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.usefixtures("allow_audit_flush")
def test_links_move_to_their_own_table_and_back(transactional_db):
    migrate(BEFORE)
    try:
        prev_hash, hashes = GENESIS_HASH, []
        with connection.cursor() as cursor:
            for seq in (1, 2, 3):
                label = f"user{seq}@example.org"
                row_hash = compute_row_hash(
                    prev_hash=prev_hash, seq=seq, created_at=WHEN, event=Event.LOGOUT,
                    actor_ref="", actor_label=label, ip=None, user_agent="", target_type="",
                    target_id="", detail={},
                )  # fmt: skip
                cursor.execute(
                    INSERT,
                    [10 + seq, seq, WHEN, Event.LOGOUT, label, prev_hash, row_hash],
                )
                prev_hash = row_hash
                hashes.append(row_hash)
            # Recorded but not sealed yet when the migration runs.
            cursor.execute(INSERT, [14, None, WHEN, Event.LOGOUT, "late@example.org", "", None])
    finally:
        migrate(AFTER)

    assert AuditSealState.objects.get().low == 13
    events = list(AuditEvent.objects.select_related("link").order_by("id"))
    assert [(event.seq, event.row_hash) for event in events[:3]] == [
        (1, hashes[0]),
        (2, hashes[1]),
        (3, hashes[2]),
    ]
    assert events[3].seq is None
    assert seal() == 1
    report = chain_verify(seal_first=False)
    assert report.ok, report.problem
    assert report.chain.verified == 4

    migrate(BEFORE)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, seq, row_hash FROM audit_auditevent ORDER BY id")
            rows = cursor.fetchall()
        assert [row[:2] for row in rows] == [(11, 1), (12, 2), (13, 3), (14, 4)]
        assert [row[2] for row in rows[:3]] == hashes
    finally:
        migrate(AFTER)
