"""Concurrent writers never fork the chain.

``record()`` inserts unsealed rows without any lock; ``seal()`` gives them their place under a
transaction-level advisory lock (see the docstring of ``apps.audit.services``), and the unique
``seq`` is the guard behind it. Here eight writers record (some of them rolling back) while two
sealers run at the same time, as the beat task and a trace export would. SQLite needs no test of
its own: the project opens IMMEDIATE transactions, so one writer or sealer runs at a time.
"""

import threading
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from apps.audit.events import Event
from apps.audit.models import AuditEvent, AuditSealState
from apps.audit.services import record, seal
from apps.audit.testing import sealed

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="concurrent writers are serialised by the database lock on SQLite",
)

WRITERS, PER_WRITER, SEALERS = 8, 25, 2


@pytest.mark.usefixtures("allow_audit_flush")
def test_eight_concurrent_writers_and_two_sealers_form_one_gapless_chain(transactional_db):
    barrier = threading.Barrier(WRITERS + SEALERS)
    errors: list[BaseException] = []
    committed = [0] * WRITERS
    writing = threading.Event()
    writing.set()

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(PER_WRITER):
                with transaction.atomic():
                    record(event=Event.MESSAGE_READ, actor_label=f"w{n}", extra={"i": i})
                    if i % 5 == 4:  # a request that fails after recording: its row never was
                        transaction.set_rollback(True)
                        continue
                committed[n] += 1
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    def sealer() -> None:
        try:
            barrier.wait()
            while writing.is_set():
                seal(batch_size=7)  # several short transactions per run
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    writers = [threading.Thread(target=work, args=(n,)) for n in range(WRITERS)]
    sealers = [threading.Thread(target=sealer) for _ in range(SEALERS)]
    for thread in writers + sealers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    for thread in sealers:
        thread.join()
    seal()

    assert errors == []
    total = sum(committed)
    assert total == WRITERS * PER_WRITER * 4 // 5
    seqs = AuditEvent.objects.order_by("link__seq").values_list("link__seq", flat=True)
    assert list(seqs) == list(range(1, total + 1))
    labels = set(AuditEvent.objects.values_list("actor_label", flat=True))
    assert labels == {f"w{n}" for n in range(WRITERS)}
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().startswith(f"OK: {total} events verified")


def test_a_sealer_bypassing_the_lock_gets_an_error_not_a_fork(db):
    """Behind the lock, the unique seq refuses a second link at the same place in the chain."""
    first = sealed(record(event=Event.LOGOUT))
    intruder = record(event=Event.LOGIN_FAILED, actor_label="intruder")

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditlink (seq, event_id, prev_hash, row_hash) "
            "VALUES (%s, %s, %s, %s)",
            [first.seq, intruder.pk, first.prev_hash, "f" * 64],
        )
    assert sealed(intruder).seq == 2


@pytest.mark.usefixtures("allow_audit_flush")
def test_an_event_committed_long_after_later_ones_were_sealed_is_sealed(transactional_db):
    """The sealer reads only events above its watermark; an event whose transaction took its id
    first and commits last, after several sealing runs, is still found and sealed."""
    recorded, release, errors, held = threading.Event(), threading.Event(), [], []

    def slow_request() -> None:
        try:
            with transaction.atomic():
                held.append(record(event=Event.MESSAGE_READ, actor_label="slow").pk)  # first
                recorded.set()
                assert release.wait(10)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_request)
    thread.start()
    assert recorded.wait(10)
    for n in range(4):
        with transaction.atomic():
            record(event=Event.MESSAGE_READ, actor_label=f"quick{n}")
        seal()
        assert AuditSealState.objects.get().low < held[0]  # not past the open transaction
    release.set()
    thread.join()
    seal()
    seal()
    # Once it has ended, the watermark moves past every event (the reads stay short).
    assert AuditSealState.objects.get().low == AuditEvent.objects.latest().pk

    assert errors == []
    slow = AuditEvent.objects.select_related("link").get(actor_label="slow")
    assert slow.pk == min(AuditEvent.objects.values_list("id", flat=True))
    assert slow.seq == 5
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().startswith("OK: 5 events verified")
    assert "Not sealed yet" not in out.getvalue()
