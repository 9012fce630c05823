"""Reading delivery state. Callers pass a message already obtained through the mailbox
selectors (which hold the access control)."""

from apps.delivery.models import OutboundDelivery, ReceiptAnswer
from apps.mailbox.models import FolderKind, Message


def delivery_statuses(*, message: Message) -> list[OutboundDelivery]:
    """Per-recipient status of a message the mailbox sent (empty for other messages): one
    query, whatever the number of recipients."""
    if message.sent_by_id is None and message.folder.kind != FolderKind.SENT:
        return []
    return list(
        OutboundDelivery.objects.filter(message=message)
        .only(
            "id",
            "message_id",
            "recipient",
            "route",
            "status",
            "attempts",
            "next_attempt_at",
            "reason",
            "delivered_at",
            "read_at",
        )
        .order_by("recipient")
    )


def receipt_answered(*, message: Message) -> bool:
    return ReceiptAnswer.objects.filter(message=message).exists()
