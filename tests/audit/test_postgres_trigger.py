"""The database-level guard, on PostgreSQL only (SQLite has no trigger)."""

import threading
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.audit.services import record, seal

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="the append-only trigger exists on PostgreSQL only",
)


def execute(sql: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.fixture
def event(make_user):
    return record(event=Event.LOGIN_SUCCEEDED, actor=make_user(), extra={"factor": "password"})


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET actor_label = 'x@example.org' WHERE id = %s",
        "UPDATE audit_auditevent SET actor_id = NULL, detail = '{}' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ],
)
def test_trigger_refuses_updates_and_deletes(event, sql):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute(sql, [event.id])

    assert AuditEvent.objects.values("actor_id", "detail").get() == {
        "actor_id": event.actor_id,
        "detail": {"factor": "password"},
    }


def test_trigger_refuses_giving_the_event_to_another_actor(event, make_user):
    other = make_user("other@example.org")

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute("UPDATE audit_auditevent SET actor_id = %s WHERE id = %s", [other.pk, event.id])


def test_trigger_refuses_truncate(event):
    # PostgreSQL refuses to truncate a table with deferred foreign key checks pending (the
    # event's actor): run them now, so that the trigger is what answers. The links refer to the
    # events: alone, the events cannot be truncated at all.
    execute("SET CONSTRAINTS ALL IMMEDIATE")

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute("TRUNCATE audit_auditevent, audit_auditlink")

    assert AuditEvent.objects.count() == 1


def test_trigger_lets_only_the_actor_be_unset(event):
    execute("UPDATE audit_auditevent SET actor_id = NULL WHERE id = %s", [event.id])

    assert AuditEvent.objects.values_list("actor_id", flat=True).get() is None


def test_trigger_lets_maintenance_through_for_one_transaction_only(event):
    with transaction.atomic():
        execute("SET LOCAL mssweb.audit_maintenance = 'on'")
        execute("DELETE FROM audit_auditevent WHERE id = %s", [event.id])
        transaction.set_rollback(True)

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute("DELETE FROM audit_auditevent WHERE id = %s", [event.id])


@pytest.mark.usefixtures("allow_audit_flush")
def test_concurrent_records_form_one_chain(transactional_db):
    """Each thread records and then seals, in its own transactions: four sealers at once, which
    the advisory lock keeps in line (without it, two would take the same seq and one would fail).
    Flushing the table afterwards needs ``allow_audit_flush``."""
    threads_count, per_thread = 4, 15
    barrier = threading.Barrier(threads_count)
    errors = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with transaction.atomic():
                    record(event=Event.LOGIN_FAILED, actor_label=f"t{n}", extra={"i": i})
                seal()
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    seqs = AuditEvent.objects.order_by("link__seq").values_list("link__seq", flat=True)
    assert list(seqs) == list(range(1, threads_count * per_thread + 1))
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().startswith(f"OK: {threads_count * per_thread} events verified")


def test_trigger_refuses_changing_or_removing_a_retention_checkpoint(event):
    from datetime import timedelta

    from django.utils import timezone

    from apps.audit.models import AuditCheckpoint
    from apps.audit.retention import audit_purge

    record(event=Event.LOGOUT)
    audit_purge(now=timezone.now() + timedelta(days=366))
    checkpoint = AuditCheckpoint.objects.get()

    for sql in (
        "UPDATE audit_auditcheckpoint SET count = 0 WHERE id = %s",
        "DELETE FROM audit_auditcheckpoint WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            execute(sql, [checkpoint.id])
    assert AuditCheckpoint.objects.values_list("count", flat=True).get() == 1


def test_sealing_leaves_the_event_row_as_it_was_and_its_link_cannot_change(event):
    def row():
        return list(AuditEvent.objects.filter(pk=event.pk).values().get().items())

    before = row()
    assert seal() == 1
    assert row() == before
    execute("SET CONSTRAINTS ALL IMMEDIATE")  # see test_trigger_refuses_truncate
    for sql in (
        "UPDATE audit_auditlink SET row_hash = 'b' WHERE seq = 1",
        "UPDATE audit_auditlink SET event_id = event_id WHERE seq = 1",
        "DELETE FROM audit_auditlink WHERE seq = 1",
        "TRUNCATE audit_auditlink",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            execute(sql)
    assert AuditEvent.objects.values_list("link__seq", flat=True).get() == 1
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().startswith("OK: 1 events verified")
