"""Retention: audit rows older than ``AUDIT_RETENTION_DAYS`` and messages left in the Corbeille
longer than ``MAILBOX_TRASH_RETENTION_DAYS`` are removed by the daily task
(``audit.purge_retention``) or ``manage.py purge_retention``.

The audit purge keeps the chain verifiable: it removes a prefix of the chain (never the head row)
and inserts an ``AuditCheckpoint`` naming the range and the hash of its last row, where
verification then starts; the ``AUDIT_PURGED`` event repeats it inside the chain. The range is
verified before it is removed, so a purge never erases the evidence of a broken chain: it refuses.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, compute_checkpoint_hash, verify_rows
from apps.audit.events import Event
from apps.audit.integrity import rows_stream
from apps.audit.models import AuditCheckpoint, AuditEvent, AuditLink
from apps.audit.services import chain_head, record, seal
from apps.core.exceptions import ApplicationError
from apps.mailbox.models import FolderKind, Message
from apps.mailbox.services import messages_delete

logger = logging.getLogger(__name__)


class AuditPurgeRefused(ApplicationError):
    """The rows to purge do not verify: keep them for the investigation."""


@transaction.atomic
def audit_purge(*, now: datetime | None = None) -> AuditCheckpoint | None:
    """Remove the audit rows recorded before ``now - AUDIT_RETENTION_DAYS`` (all but the head
    row), leaving a checkpoint; None when there is nothing to purge."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    seal()  # takes the chain lock, held to the end: one purge at a time, no sealing meanwhile
    head = chain_head()
    last = (
        AuditLink.objects.filter(event__created_at__lt=cutoff, seq__lt=head[0] if head else 0)
        .order_by("-seq")
        .values_list("seq", "row_hash")
        .first()
    )
    if last is None:
        return None
    last_seq, last_hash = last
    previous = AuditCheckpoint.objects.order_by("-last_seq").first()
    first_seq = previous.last_seq + 1 if previous else 1
    report = verify_rows(
        rows_stream(start_seq=first_seq, stop_seq=last_seq),
        prev_hash=previous.last_hash if previous else GENESIS_HASH,
        next_seq=first_seq,
    )
    if not report.ok or report.verified != last_seq - first_seq + 1:
        raise AuditPurgeRefused(
            f"audit rows {first_seq}-{last_seq} do not verify ({report.broken}): not purged"
        )
    events = connection.ops.quote_name(AuditEvent._meta.db_table)
    links = connection.ops.quote_name(AuditLink._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL mssweb.audit_maintenance = 'on'")
        # The events first, found through their links (the foreign key is checked at COMMIT).
        cursor.execute(
            f"DELETE FROM {events} WHERE id IN (SELECT event_id FROM {links} "  # noqa: S608
            "WHERE seq >= %s AND seq <= %s)",
            [first_seq, last_seq],
        )
        cursor.execute(
            f"DELETE FROM {links} WHERE seq >= %s AND seq <= %s",  # noqa: S608 - quoted name
            [first_seq, last_seq],
        )
        deleted = cursor.rowcount
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL mssweb.audit_maintenance = 'off'")
    fields = {
        "created_at": now,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "count": deleted,
        "last_hash": last_hash,
    }
    prev_checkpoint_hash = previous.checkpoint_hash if previous else GENESIS_HASH
    checkpoint = AuditCheckpoint.objects.create(
        prev_checkpoint_hash=prev_checkpoint_hash,
        checkpoint_hash=compute_checkpoint_hash(
            prev_checkpoint_hash=prev_checkpoint_hash, **fields
        ),
        **fields,
    )
    record(
        event=Event.AUDIT_PURGED,
        target=checkpoint,
        extra={
            "first_seq": first_seq, "last_seq": last_seq, "count": deleted,
            "last_hash": last_hash, "checkpoint_hash": checkpoint.checkpoint_hash,
            "retention_days": settings.AUDIT_RETENTION_DAYS,
        },
    )  # fmt: skip
    seal()  # the AUDIT_PURGED event in the chain, as audit_verify expects it
    logger.info("audit rows purged", extra={"first_seq": first_seq, "last_seq": last_seq})
    return checkpoint


def trash_purge(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Delete for good the messages in a Corbeille for longer than
    ``MAILBOX_TRASH_RETENTION_DAYS``, as ``messages_delete`` does from the Corbeille (quota given
    back, MESSAGE_DELETED per message, actor None: the system), plus one TRASH_PURGED per
    mailbox and batch. Returns how many were deleted.

    Messages carry no "moved to the Corbeille" time: a message is old enough when it was received
    before the cutoff and the audit trail has no move of it since (MESSAGE_MOVED)."""
    now = now or timezone.now()
    days = settings.MAILBOX_TRASH_RETENTION_DAYS
    cutoff = now - timedelta(days=days)
    total, after = 0, 0
    while True:
        candidates = list(
            Message.objects.filter(
                folder__kind=FolderKind.TRASH, received_at__lt=cutoff, pk__gt=after
            )
            .select_related("folder", "mailbox")
            .order_by("pk")[:batch_size]
        )
        if not candidates:
            return total
        after = candidates[-1].pk
        moved_since = set(
            AuditEvent.objects.filter(
                event=Event.MESSAGE_MOVED,
                target_type=Message._meta.label_lower,
                target_id__in=[str(message.pk) for message in candidates],
                created_at__gte=cutoff,
            ).values_list("target_id", flat=True)
        )
        by_mailbox: dict[int, list[Message]] = {}
        for message in candidates:
            if str(message.pk) not in moved_since:
                by_mailbox.setdefault(message.mailbox_id, []).append(message)
        for messages in by_mailbox.values():
            with transaction.atomic():
                count = messages_delete(user=None, messages=messages)
                record(
                    event=Event.TRASH_PURGED,
                    target=messages[0].mailbox,
                    extra={"count": count, "retention_days": days},
                )
            total += count
        if len(candidates) < batch_size:
            return total
