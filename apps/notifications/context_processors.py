from django.utils.functional import SimpleLazyObject

from apps.notifications.selectors import inbox_unread_count


def unread(request) -> dict:
    """``UNREAD_COUNT``: unread mail in the user's inboxes, for the page title and the app badge.
    Counted (one query on the partial unread index) only when a template shows it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"UNREAD_COUNT": 0}
    return {"UNREAD_COUNT": SimpleLazyObject(lambda: inbox_unread_count(user=user))}
