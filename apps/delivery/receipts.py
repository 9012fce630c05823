"""Delivery-status notifications (RFC 3464) and read receipts (RFC 8098) that come back for mail
we sent: they update the sender's per-recipient status instead of being filed as ordinary mail.

The inbound ingestion calls ``receipt_absorb`` for every incoming message before filing it.
"""

from apps.ingestion.parse import ParsedMessage


def receipt_absorb(*, mailbox, parsed: ParsedMessage, raw: bytes) -> bool:
    """True when ``parsed`` was a report about a message sent from ``mailbox`` and has been
    attached to that message's recipient status (the caller then does not file it)."""
    return False
