from io import StringIO

import pytest
from django.core.management import call_command

from apps.audit.chain import GENESIS_HASH, HASHED_FIELDS, compute_row_hash
from apps.audit.events import Event
from apps.audit.models import AuditEvent, AuditSealState
from apps.audit.services import record
from apps.audit.testing import chain_rows, sealed
from apps.core.request_meta import RequestMeta
from tests.audit.conftest import rows_delete, verify, verify_fails


@pytest.fixture
def chain(db) -> list[AuditEvent]:
    """Five events; the third from an IPv6 address PostgreSQL prints its own way."""
    return sealed(*[
        record(
            event=Event.LOGIN_SUCCEEDED,
            target=("mailbox.mailbox", seq),
            meta=RequestMeta(ip="::1:2" if seq == 3 else "192.0.2.1", user_agent="Firefox"),
            extra={"n": seq, "mot": "déjà"},
            actor_label=f"user{seq}@example.org",
        )
        for seq in range(1, 6)
    ])  # fmt: skip


def test_audit_verify_accepts_a_good_chain(chain):
    assert verify() == f"OK: 5 events verified, head {chain[-1].row_hash}"


def test_audit_verify_accepts_an_empty_trail(db):
    assert verify() == f"OK: 0 events verified, head {GENESIS_HASH}"


def test_audit_verify_names_an_edited_row(chain, tamper):
    tamper(
        "UPDATE audit_auditevent SET actor_label = %s WHERE id = %s", ["x@example.org", chain[2].id]
    )

    message = verify_fails()

    assert f"seq 3 (id {chain[2].id}): hash mismatch" in message
    assert "2 events verified" in message


def test_audit_verify_names_the_row_after_a_rewritten_and_rehashed_one(chain, tamper):
    row = chain_rows()[1]
    row["actor_label"] = "x@example.org"
    forged = compute_row_hash(prev_hash=row["prev_hash"], **{n: row[n] for n in HASHED_FIELDS})
    tamper(
        "UPDATE audit_auditevent SET actor_label = %s WHERE id = %s", ["x@example.org", row["id"]]
    )
    tamper("UPDATE audit_auditlink SET row_hash = %s WHERE seq = %s", [forged, row["seq"]])

    assert f"seq 3 (id {chain[2].id}): broken link" in verify_fails()


def test_audit_verify_names_the_row_after_a_deleted_one(chain, tamper):
    rows_delete(tamper, "event_id = %s", [chain[1].id])

    assert f"seq 3 (id {chain[2].id}): missing rows" in verify_fails()


def test_audit_verify_notices_that_the_first_rows_were_deleted(chain, tamper):
    rows_delete(tamper, "seq <= %s", [2])

    assert f"seq 3 (id {chain[2].id}): missing rows" in verify_fails()


def test_audit_verify_names_rows_whose_seq_were_swapped(chain, tamper):
    second, third = chain[1], chain[2]
    swap = "UPDATE audit_auditlink SET seq = %s WHERE event_id = %s"
    tamper(swap, [1_000_000, second.id])
    tamper(swap, [2, third.id])
    tamper(swap, [3, second.id])

    assert f"seq 2 (id {third.id}): hash mismatch" in verify_fails()


def test_audit_verify_names_rows_whose_contents_were_swapped(chain, tamper):
    second, third = chain[1], chain[2]
    for row, source in ((second, third), (third, second)):
        tamper(
            "UPDATE audit_auditevent SET actor_label = %s, target_id = %s WHERE id = %s",
            [source.actor_label, source.target_id, row.id],
        )

    assert f"seq 2 (id {second.id}): hash mismatch" in verify_fails()


def test_audit_verify_from_seq_trusts_the_row_before(chain, tamper):
    tamper(
        "UPDATE audit_auditevent SET actor_label = %s WHERE id = %s", ["x@example.org", chain[0].id]
    )

    assert verify("--from-seq", "2") == f"OK: 4 events verified, head {chain[-1].row_hash}"
    assert verify("--from-seq", "6") == f"OK: 0 events verified, head {chain[-1].row_hash}"
    assert "seq 1" in verify_fails("--from-seq", "1")


def test_audit_verify_from_seq_still_checks_the_link_to_the_row_before(chain, tamper):
    rows_delete(tamper, "event_id = %s", [chain[2].id])

    assert f"seq 4 (id {chain[3].id}): missing rows" in verify_fails("--from-seq", "4")


def test_audit_verify_seals_what_was_recorded_since_unless_told_not_to(chain):
    late = record(event=Event.LOGOUT)

    out = verify("--no-seal")
    assert out.startswith(f"OK: 5 events verified, head {chain[-1].row_hash}")
    assert out.endswith("Not sealed yet (left out): 1 events.")
    assert AuditEvent.objects.get(pk=late.pk).seq is None

    assert verify().startswith("OK: 6 events verified")
    assert AuditEvent.objects.get(pk=late.pk).seq == 6


def test_audit_seal_command_and_task_chain_the_pending_events(chain):
    from apps.audit.tasks import seal as seal_task

    record(event=Event.LOGOUT)
    record(event=Event.LOGOUT)
    out = StringIO()
    call_command("audit_seal", stdout=out)
    assert out.getvalue().strip() == "Sealed 2 events."
    record(event=Event.LOGOUT)
    assert seal_task.delay().get() == 1
    assert not AuditEvent.objects.filter(link__isnull=True).exists()
    assert verify().startswith("OK: 8 events verified")


def test_audit_verify_names_an_event_whose_link_was_removed(chain, tamper):
    """Removing the head's link leaves a shorter chain that verifies, but its event is below the
    sealer's watermark without a link: it escaped the chain, and the check says so."""
    # Where the sealer's watermark is once the events' transactions have ended (inside this
    # test's transaction PostgreSQL's sealer cannot know it yet).
    AuditSealState.objects.update_or_create(pk=1, defaults={"low": chain[-1].id})
    tamper("DELETE FROM audit_auditlink WHERE seq = 5")

    assert f"audit event id {chain[4].id} is not in the chain" in verify_fails()


def test_audit_verify_names_an_event_whose_link_was_moved_to_another(chain, tamper):
    tamper("DELETE FROM audit_auditlink WHERE seq = 4")
    tamper("UPDATE audit_auditlink SET event_id = %s WHERE seq = 3", [chain[3].id])

    assert f"seq 3 (id {chain[3].id}): hash mismatch" in verify_fails()
