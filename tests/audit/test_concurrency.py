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
from apps.audit.models import AuditEvent
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
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(
        range(1, total + 1)
    )
    labels = set(AuditEvent.objects.values_list("actor_label", flat=True))
    assert labels == {f"w{n}" for n in range(WRITERS)}
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().startswith(f"OK: {total} events verified")


def test_a_sealer_bypassing_the_lock_gets_an_error_not_a_fork(db):
    """Behind the lock, the unique seq refuses a second row at the same place in the chain."""
    first = sealed(record(event=Event.LOGOUT))
    intruder = record(event=Event.LOGIN_FAILED, actor_label="intruder")

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET seq = %s, prev_hash = %s, row_hash = %s WHERE id = %s",
            [first.seq, first.prev_hash, "f" * 64, intruder.pk],
        )
    assert sealed(intruder).seq == 2
