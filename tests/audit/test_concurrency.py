"""Concurrent writers never fork the chain.

On PostgreSQL, ``record()`` serialises appends with a transaction-level advisory lock (see the
docstring of ``apps.audit.services``), and the unique ``seq`` is the guard behind it. SQLite
needs no test of its own: the project opens IMMEDIATE transactions, so a second writer waits for
the database write lock before its first read of the head.
"""

import threading
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from apps.audit.chain import compute_row_hash
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.audit.services import record

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="concurrent writers are serialised by the database lock on SQLite",
)

WRITERS, PER_WRITER = 8, 25


@pytest.mark.usefixtures("allow_audit_flush")
def test_eight_concurrent_writers_with_rollbacks_form_one_gapless_chain(transactional_db):
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []
    committed = [0] * WRITERS

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

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    total = sum(committed)
    assert total == WRITERS * PER_WRITER * 4 // 5
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(
        range(1, total + 1)
    )
    writers = set(AuditEvent.objects.values_list("actor_label", flat=True))
    assert writers == {f"w{n}" for n in range(WRITERS)}
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().startswith(f"OK: {total} events verified")


def test_a_writer_bypassing_the_lock_gets_an_error_not_a_fork(db):
    """Behind the lock, the unique seq refuses a second row at the same place in the chain."""
    first = record(event=Event.LOGOUT)
    fields = {
        "seq": first.seq, "created_at": first.created_at, "event": int(Event.LOGIN_FAILED),
        "actor_ref": "", "actor_label": "intruder", "ip": None, "user_agent": "",
        "target_type": "", "target_id": "", "detail": {},
    }  # fmt: skip
    fork = AuditEvent(
        prev_hash=first.prev_hash,
        row_hash=compute_row_hash(prev_hash=first.prev_hash, **fields),
        **fields,
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        fork.save()
    assert AuditEvent.objects.count() == 1
