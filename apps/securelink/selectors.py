"""Reading secure links: by the token of a URL (the recipient), or as the sender."""

from collections.abc import Iterable

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from apps.mailbox.models import Attachment, Message
from apps.mailbox.selectors import mailboxes_for_user
from apps.securelink.models import SecureLink, SecureLinkAccess
from apps.securelink.services import token_hash

TOKEN_MAX = 100


def secure_link_by_token(*, token: str) -> SecureLink:
    """The link whose URL carries ``token``, or 404 (whatever its state: the views tell a
    revoked or expired link apart, never a wrong token from a missing one)."""
    if not token or len(token) > TOKEN_MAX:
        raise Http404
    link = (
        SecureLink.objects.select_related("message__mailbox")
        .filter(token_hash=token_hash(token))
        .first()
    )
    if link is None:
        raise Http404
    return link


def link_attachments(*, link: SecureLink) -> QuerySet[Attachment]:
    """The files the recipient may download (inline images of an HTML body excepted)."""
    return link.message.attachments.filter(inline=False).order_by("pk")


def link_attachment_get(*, link: SecureLink, attachment_id: int) -> Attachment:
    """An attachment of the link's message, inline images included (the frame shows them)."""
    attachment = (
        Attachment.objects.select_related("blob")
        .filter(pk=attachment_id, message_id=link.message_id)
        .first()
    )
    if attachment is None:
        raise Http404
    return attachment


def _links_of_user(*, user) -> QuerySet[SecureLink]:
    return SecureLink.objects.filter(
        message__mailbox__in=mailboxes_for_user(user=user).values("pk")
    )


def secure_link_get_for_user(*, user, link_id: int) -> SecureLink:
    link = _links_of_user(user=user).select_related("message").filter(pk=link_id).first()
    if link is None:
        raise Http404
    return link


def secure_links_for_messages(*, user, messages: Iterable[Message]) -> list[SecureLink]:
    """The links of ``messages`` that ``user`` may see, with their accesses (two queries)."""
    ids = [m.pk for m in messages]
    if not ids:
        return []
    return list(
        _links_of_user(user=user)
        .filter(message_id__in=ids)
        .prefetch_related(
            Prefetch("accesses", queryset=SecureLinkAccess.objects.order_by("at", "pk"))
        )
        .order_by("message_id", "created_at", "pk")
    )
