"""Reads the gateway makes during an SMTP conversation."""

from enum import StrEnum

from apps.mailbox.models import Mailbox


class RecipientState(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"
    FULL = "full"


def recipient_state(*, address: str) -> RecipientState:
    """Whether mail for ``address`` (lower-case) can be accepted: a local mailbox with room."""
    mailbox = Mailbox.objects.filter(address=address).only("used_bytes", "quota_bytes").first()
    if mailbox is None:
        return RecipientState.UNKNOWN
    if mailbox.used_bytes >= mailbox.quota:
        return RecipientState.FULL
    return RecipientState.OK


def trusted_dns_for(*, domain: str) -> frozenset[str]:
    """Canonical subject DNs the trust list allows to send mail for ``domain``."""
    from apps.trustlist.routing import trusted_dns

    return trusted_dns(domain)
