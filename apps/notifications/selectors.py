"""Reading notification settings and devices: a user only ever sees their own."""

from django.db.models import QuerySet
from django.http import Http404

from apps.mailbox.models import Folder, FolderKind, Message
from apps.mailbox.selectors import mailboxes_for_user
from apps.notifications.models import NotificationPreference, PushSubscription


def preference_for_user(*, user) -> NotificationPreference:
    """The user's preferences, or the defaults (unsaved) when they never changed them."""
    return NotificationPreference.objects.filter(user=user).first() or NotificationPreference(
        user=user
    )


def subscriptions_for_user(*, user) -> QuerySet[PushSubscription]:
    return PushSubscription.objects.filter(user=user).order_by("-created_at")


def subscription_get_for_user(*, user, subscription_id: int) -> PushSubscription:
    subscription = subscriptions_for_user(user=user).filter(pk=subscription_id).first()
    if subscription is None:
        raise Http404
    return subscription


def inbox_unread_count(*, user) -> int:
    """Unread messages in the inboxes of the user's own and shared mailboxes."""
    return Message.objects.filter(
        mailbox__in=mailboxes_for_user(user=user), folder__kind=FolderKind.INBOX, is_read=False
    ).count()


def urgent_unread_messages(*, folder: Folder, limit: int = 20) -> list[Message]:
    """Unread urgent messages of a folder the caller already checked the user may open (newest
    first), pinned at the top of the inbox."""
    return list(
        Message.objects.filter(folder=folder, is_urgent=True, is_read=False)
        .order_by("-date", "-id")
        .only("id", "subject", "from_name", "from_address", "date", "has_attachments")[:limit]
    )
