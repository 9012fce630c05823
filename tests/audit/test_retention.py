"""Retention: old audit rows and old Corbeille messages go, and the chain still verifies."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import TestCase
from django.utils import timezone

from apps.audit.anchors import chain_anchor
from apps.audit.chain import compute_checkpoint_hash
from apps.audit.events import Event
from apps.audit.integrity import chain_verify, integrity_check
from apps.audit.models import AuditCheckpoint, AuditEvent
from apps.audit.retention import AuditPurgeRefused, audit_purge, trash_purge
from apps.audit.services import record
from apps.audit.testing import sealed
from apps.mailbox import services as mail_services
from apps.mailbox.models import FolderKind, Mailbox, Message
from tests.audit.conftest import rows_delete, verify, verify_fails
from tests.conftest import make_user

LATER = timedelta(days=366)  # past the default retention of 365 days


@pytest.fixture
def events(db, settings, tmp_path):
    settings.AUDIT_ANCHOR_DIR = str(tmp_path / "anchors")
    return sealed(*[record(event=Event.LOGIN_FAILED, extra={"n": n}) for n in range(1, 6)])


def test_purge_removes_old_rows_but_the_head_and_leaves_a_checkpoint(events):
    checkpoint = audit_purge(now=timezone.now() + LATER)

    assert (checkpoint.first_seq, checkpoint.last_seq, checkpoint.count) == (1, 4, 4)
    assert checkpoint.last_hash == events[3].row_hash
    assert list(AuditEvent.objects.order_by("link__seq").values_list("link__seq", "event")) == [
        (5, Event.LOGIN_FAILED),
        (6, Event.AUDIT_PURGED),
    ]
    purged = AuditEvent.objects.get(link__seq=6)
    assert purged.actor is None
    assert purged.detail == {
        "first_seq": 1, "last_seq": 4, "count": 4, "last_hash": events[3].row_hash,
        "checkpoint_hash": checkpoint.checkpoint_hash, "retention_days": 365,
    }  # fmt: skip


def test_purging_keeps_verification_green_across_several_purges(events):
    audit_purge(now=timezone.now() + LATER)
    assert verify().splitlines() == [
        f"OK: 2 events verified, head {AuditEvent.objects.latest().row_hash}",
        "Retention: 4 older events purged; the chain starts after checkpoint seq 4.",
    ]
    record(event=Event.LOGOUT)
    audit_purge(now=timezone.now() + LATER)

    assert list(AuditCheckpoint.objects.values_list("first_seq", "last_seq")) == [(1, 4), (5, 6)]
    seqs = AuditEvent.objects.values_list("link__seq", flat=True).order_by("link__seq")
    assert list(seqs) == [7, 8]
    report = chain_verify()
    assert report.ok, report.problem
    assert (report.start_seq, report.purged, report.head_seq) == (7, 6, 8)


def test_nothing_to_purge_within_retention(events):
    assert audit_purge() is None
    assert not AuditCheckpoint.objects.exists()
    assert AuditEvent.objects.count() == 5


def test_a_tampered_checkpoint_hash_link_is_detected(events, tamper):
    audit_purge(now=timezone.now() + LATER)
    tamper("UPDATE audit_auditcheckpoint SET last_hash = %s", ["e" * 64])

    assert "checkpoint 1-4: hash mismatch" in verify_fails()


def test_a_checkpoint_rewritten_with_its_hash_is_detected_by_the_chain(events, tamper):
    """Someone removes one more row and rewrites the checkpoint (with a valid hash) to hide it:
    the AUDIT_PURGED event in the chain still says what the purge removed."""
    audit_purge(now=timezone.now() + LATER)
    record(event=Event.LOGOUT)
    checkpoint = AuditCheckpoint.objects.get()
    fifth = AuditEvent.objects.get(link__seq=5)
    fields = {
        "created_at": checkpoint.created_at, "first_seq": 1, "last_seq": 5, "count": 5,
        "last_hash": fifth.row_hash,
    }  # fmt: skip
    forged = compute_checkpoint_hash(prev_checkpoint_hash=checkpoint.prev_checkpoint_hash, **fields)
    rows_delete(tamper, "seq = 5")
    tamper(
        "UPDATE audit_auditcheckpoint SET last_seq = 5, count = 5, last_hash = %s, "
        "checkpoint_hash = %s",
        [fifth.row_hash, forged],
    )

    assert "does not match the AUDIT_PURGED event of the chain" in verify_fails()


def test_a_deleted_checkpoint_is_detected(events, tamper):
    audit_purge(now=timezone.now() + LATER)
    tamper("DELETE FROM audit_auditcheckpoint")

    assert "seq 5" in verify_fails()
    assert "missing rows" in verify_fails()


def test_a_purge_refuses_to_erase_a_broken_range(events, tamper):
    tamper(
        "UPDATE audit_auditevent SET actor_label = 'x' "
        "WHERE id = (SELECT event_id FROM audit_auditlink WHERE seq = 2)"
    )

    with pytest.raises(AuditPurgeRefused):
        audit_purge(now=timezone.now() + LATER)
    assert AuditEvent.objects.count() == 5
    assert not AuditCheckpoint.objects.exists()


def test_anchors_older_than_the_purge_still_verify_for_what_remains(events, settings):
    chain_anchor()  # seq 5: the head, kept by the purge
    record(event=Event.LOGOUT)  # 7
    chain_anchor()
    audit_purge(now=timezone.now() + LATER)  # purges 1..7 (8, the second AUDIT_ANCHORED, stays)

    assert verify("--anchors").endswith("Anchors: 2 verified (1 before the purge: signature only).")


def test_purge_retention_command(events):
    out = StringIO()
    call_command("purge_retention", stdout=out)

    assert out.getvalue().splitlines() == [
        "Audit: nothing older than 365 days.",
        "Corbeille: 0 messages deleted.",
    ]


# --- Daily integrity check ----------------------------------------------------------------


def test_daily_check_records_success(events):
    report = integrity_check()

    assert report.ok
    event = AuditEvent.objects.latest()
    assert event.event == Event.AUDIT_VERIFIED
    assert event.detail["verified"] == 5
    assert event.detail["head_hash"] == events[-1].row_hash


def test_daily_check_alerts_active_staff_on_failure(events, tamper, settings):
    staff = make_user(staff=True)
    former = make_user(staff=True)
    former.is_active = False
    former.save(update_fields=["is_active"])
    make_user()
    rows_delete(tamper, "seq = 3")

    with TestCase.captureOnCommitCallbacks(execute=True):
        report = integrity_check()

    assert not report.ok
    failed = AuditEvent.objects.filter(event=Event.AUDIT_VERIFY_FAILED).get()
    assert "seq 4" in failed.detail["problem"]
    assert [message.to for message in mail.outbox] == [[staff.email]]
    assert "seq 4" in mail.outbox[0].body
    assert "audit" in mail.outbox[0].subject


# --- Corbeille ------------------------------------------------------------------------------


def deliver(mailbox: Mailbox, subject: str) -> Message:
    raw = (
        f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.org>\r\n\r\nCorps.\r\n"
    ).encode()
    return mail_services.message_deliver_raw(mailbox=mailbox, raw=raw)


def test_trash_purge_deletes_old_corbeille_messages_only(db, settings):
    user = make_user()
    mailbox = Mailbox.objects.get(owner=user)
    first, second, in_inbox = (deliver(mailbox, s) for s in ("a", "b", "c"))
    mail_services.messages_delete(user=user, messages=[first, second])
    mailbox.refresh_from_db()
    used = mailbox.used_bytes

    # 31 days later: both were moved to the Corbeille more than 30 days before.
    assert trash_purge(now=timezone.now() + timedelta(days=31)) == 2

    assert list(Message.objects.filter(mailbox=mailbox).values_list("pk", flat=True)) == [
        in_inbox.pk
    ]
    mailbox.refresh_from_db()
    assert mailbox.used_bytes == used - first.size - second.size
    purge_event = AuditEvent.objects.get(event=Event.TRASH_PURGED)
    assert (purge_event.actor, purge_event.target_id) == (None, str(mailbox.pk))
    assert purge_event.detail == {"count": 2, "retention_days": 30}
    deleted = AuditEvent.objects.filter(event=Event.MESSAGE_DELETED)
    assert sorted(deleted.values_list("target_id", flat=True)) == sorted(
        [str(first.pk), str(second.pk)]
    )
    assert all(event.actor is None for event in deleted)


def test_trash_purge_waits_for_30_days_after_the_move(db):
    user = make_user()
    mailbox = Mailbox.objects.get(owner=user)
    message = deliver(mailbox, "x")
    Message.objects.filter(pk=message.pk).update(received_at=timezone.now() - timedelta(days=90))
    mail_services.messages_delete(user=user, messages=[message])  # moved today

    assert trash_purge(now=timezone.now() + timedelta(days=29)) == 0
    assert trash_purge() == 0
    assert Message.objects.filter(pk=message.pk, folder__kind=FolderKind.TRASH).exists()
    assert trash_purge(now=timezone.now() + timedelta(days=31)) == 1
    assert not Message.objects.filter(pk=message.pk).exists()
    assert chain_verify().ok
