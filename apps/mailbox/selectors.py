from django.db.models import Q, QuerySet

from apps.mailbox.models import Mailbox


def mailboxes_for_user(*, user) -> QuerySet[Mailbox]:
    """The mailboxes ``user`` may open: their personal one first, then shared ones."""
    return (
        Mailbox.objects.filter(Q(owner=user) | Q(memberships__user=user))
        .distinct()
        .order_by("-kind", "address")  # PER before ORG
    )
