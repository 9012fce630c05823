"""Delivery-status notifications (RFC 3464) and read receipts (RFC 8098) that come back for mail
we sent: they update the sender's per-recipient status instead of being filed as ordinary mail.

The inbound ingestion calls ``receipt_absorb`` for every incoming message before filing it.
"""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.events import Event
from apps.audit.services import record
from apps.delivery.models import OPEN_STATUSES, DeliveryStatus, OutboundDelivery
from apps.ingestion.parse import ParsedMessage, ReportEntry

_DELIVERED_ACTIONS = {"delivered", "relayed", "expanded"}


def _match(rows: list[OutboundDelivery], entry: ReportEntry) -> OutboundDelivery | None:
    wanted = (entry.final_recipient or "").lower()
    for row in rows:
        if row.recipient.lower() == wanted:
            return row
    # A report for a message with one recipient here names it, whatever alias it gives.
    return rows[0] if len(rows) == 1 else None


def receipt_absorb(*, mailbox, parsed: ParsedMessage, raw: bytes) -> bool:
    """True when ``parsed`` was a report about a message sent from ``mailbox`` and has been
    attached to that message's recipient status (the caller then does not file it)."""
    report = parsed.report
    if report is None or not report.original_message_id:
        return False
    with transaction.atomic():
        rows = list(
            OutboundDelivery.objects.select_for_update()
            .filter(mailbox=mailbox, msgid=report.original_message_id)
            .exclude(envelope_from="")  # the read receipts we sent ourselves
            .order_by("pk")
        )
        if not rows:
            return False
        now = timezone.now()
        for entry in report.entries:
            row = _match(rows, entry)
            if row is None:
                continue
            if report.kind == "mdn":
                _absorb_mdn(row, entry, when=parsed.date or now)
            else:
                _absorb_dsn(row, entry, now=now)
    return True


def _absorb_mdn(row: OutboundDelivery, entry: ReportEntry, *, when) -> None:
    disposition = (entry.disposition or "").lower()
    if "displayed" not in disposition or row.status == DeliveryStatus.READ:
        return
    changes = {"status": DeliveryStatus.READ, "read_at": when, "lease_until": None}
    if row.delivered_at is None:
        changes["delivered_at"] = when  # read implies delivered
    OutboundDelivery.objects.filter(pk=row.pk).update(**changes)
    record(
        event=Event.DELIVERY_READ, target=row,
        extra={"message": row.message_id, "domain": row.domain},
    )  # fmt: skip


def _absorb_dsn(row: OutboundDelivery, entry: ReportEntry, *, now) -> None:
    action = (entry.action or "").lower()
    changes: dict = {}
    if action in _DELIVERED_ACTIONS and row.status in (*OPEN_STATUSES, DeliveryStatus.FAILED):
        changes = {"status": DeliveryStatus.DELIVERED, "delivered_at": now, "reason": "",
                   "lease_until": None}  # fmt: skip
    elif action == "failed" and row.status != DeliveryStatus.READ:
        changes = {
            "status": DeliveryStatus.FAILED,
            "lease_until": None,
            "enhanced_status": (entry.status or "")[:16],
            "reason": (
                _("non remis, signalé par l'opérateur du destinataire (%(status)s)")
                % {"status": entry.status or "5.0.0"}
            )[:300],
        }
    if changes:
        OutboundDelivery.objects.filter(pk=row.pk).update(**changes)
    record(
        event=Event.DELIVERY_REPORT_RECEIVED, target=row,
        extra={"message": row.message_id, "domain": row.domain, "action": action,
               "status": entry.status or ""},
    )  # fmt: skip
