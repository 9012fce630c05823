"""Changing mail: folders, sending with local delivery, reading."""

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.attachments.services import blob_store
from apps.audit.events import Event
from apps.audit.services import record
from apps.core.exceptions import ApplicationError
from apps.core.request_meta import RequestMeta
from apps.ingestion.build import OutgoingAttachment, build_message, make_message_id
from apps.ingestion.parse import parse_message
from apps.mailbox.models import (
    SYSTEM_FOLDERS,
    Attachment,
    Conversation,
    Folder,
    FolderKind,
    Mailbox,
    Message,
    Recipient,
    RecipientKind,
)

logger = logging.getLogger(__name__)


class MailError(ApplicationError):
    pass


class RecipientRefused(MailError):
    pass


class MessageTooLarge(MailError):
    pass


@dataclass(frozen=True)
class Address:
    name: str
    address: str


@dataclass
class OutgoingFile:
    filename: str
    content_type: str
    size: int
    stream: BinaryIO


def folders_ensure(*, mailbox: Mailbox) -> dict[str, Folder]:
    """The five system folders of ``mailbox`` (made on first use)."""
    existing = {f.kind: f for f in mailbox.folders.exclude(kind=FolderKind.CUSTOM)}
    for kind in SYSTEM_FOLDERS:
        if kind not in existing:
            existing[kind] = Folder.objects.create(mailbox=mailbox, kind=kind)
    return existing


def parse_addresses(text: str) -> list[Address]:
    """``"Dr Marie Dupont <m.dupont@x.fr>, b@y.fr; c@z.fr"`` → addresses; refuses malformed."""
    result: list[Address] = []
    seen: set[str] = set()
    for name, address in getaddresses([text.replace(";", ",")]):
        address = address.strip().lower()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError as exc:
            raise RecipientRefused(
                _("Adresse invalide : %(address)s") % {"address": address}
            ) from exc
        if address not in seen:
            seen.add(address)
            result.append(Address(name=" ".join(name.split())[:200], address=address))
    return result


def _local_mailboxes(addresses: Iterable[Address]) -> dict[str, Mailbox]:
    """Every address must be a mailbox of this operator (other operators come with federation)."""
    wanted = {a.address for a in addresses}
    found = {m.address: m for m in Mailbox.objects.filter(address__in=wanted)}
    for address in sorted(wanted - found.keys()):
        raise RecipientRefused(
            _(
                "%(address)s n'est pas une boîte aux lettres de cet opérateur : l'envoi vers "
                "les autres opérateurs MSSanté n'est pas encore ouvert."
            )
            % {"address": address}
        )
    return found


def _conversation_for(
    *, mailbox: Mailbox, message_ids: list[str], subject: str, date: datetime
) -> Conversation:
    if message_ids:
        known = (
            Message.objects.filter(mailbox=mailbox, message_id__in=message_ids)
            .order_by("-date")
            .values_list("conversation_id", flat=True)
            .first()
        )
        if known:
            Conversation.objects.filter(pk=known, last_message_at__lt=date).update(
                last_message_at=date
            )
            return Conversation.objects.get(pk=known)
    return Conversation.objects.create(mailbox=mailbox, subject=subject[:500], last_message_at=date)


def _snippet(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(">")]
    return " ".join(" ".join(lines).split())[:200]


def message_send(
    *,
    user,
    mailbox: Mailbox,
    to: list[Address],
    cc: list[Address] = (),
    bcc: list[Address] = (),
    subject: str,
    text: str,
    files: list[OutgoingFile] = (),
    urgent: bool = False,
    read_receipt: bool = False,
    reply_to: Message | None = None,
    meta: RequestMeta | None = None,
) -> Message:
    """Send a message from ``mailbox`` (the user's own or a shared one they belong to).

    Local recipients get their copy in their inbox in the same transaction as the sender's copy
    in Envoyés: both appear together or neither does.
    """
    recipients = [*to, *cc, *bcc]
    if not recipients:
        raise RecipientRefused(_("Indiquez au moins un destinataire."))
    local = _local_mailboxes(recipients)
    if len(files) > settings.MAILBOX_MAX_ATTACHMENTS:
        raise MessageTooLarge(
            _("Au plus %(count)d pièces jointes.") % {"count": settings.MAILBOX_MAX_ATTACHMENTS}
        )
    total = sum(f.size for f in files) + len(text.encode())
    if total > settings.MAILBOX_MAX_MESSAGE_SIZE:
        raise MessageTooLarge(
            _("Le message dépasse la taille maximale de %(mb)d Mo.")
            % {"mb": settings.MAILBOX_MAX_MESSAGE_SIZE // 1_000_000}
        )

    now = timezone.now()
    domain = mailbox.address.rpartition("@")[2]
    message_id = make_message_id(domain)
    references: list[str] = []
    in_reply_to = ""
    if reply_to is not None:
        in_reply_to = reply_to.message_id
        references = [*reply_to.references.split(), reply_to.message_id][-20:]

    stored = []
    for upload in files:
        upload.stream.seek(0)
        blob = blob_store(source=upload.stream, max_size=settings.MAILBOX_MAX_MESSAGE_SIZE)
        stored.append((upload, blob))

    def _reader(upload: OutgoingFile):
        def read() -> BinaryIO:
            upload.stream.seek(0)
            return upload.stream

        return read

    raw = build_message(
        from_=(mailbox.display_name, mailbox.address),
        to=[(a.name, a.address) for a in to],
        cc=[(a.name, a.address) for a in cc],
        bcc=[(a.name, a.address) for a in bcc],
        subject=subject,
        text=text,
        attachments=[
            OutgoingAttachment(u.filename, u.content_type, _reader(u)) for u, _blob in stored
        ],
        message_id=message_id,
        in_reply_to=in_reply_to or None,
        references=references,
        date=now,
        urgent=urgent,
        read_receipt_to=mailbox.address if read_receipt else None,
    )
    raw_blob = blob_store(source=io.BytesIO(raw))

    with transaction.atomic():
        copies = [(mailbox, FolderKind.SENT, True)]
        copies += [(box, FolderKind.INBOX, False) for box in local.values() if box != mailbox]
        if mailbox.address in local:  # writing to oneself
            copies.append((mailbox, FolderKind.INBOX, False))
        sender_copy = None
        for box, kind, is_sender in copies:
            folder = folders_ensure(mailbox=box)[kind]
            copy = Message.objects.create(
                mailbox=box,
                folder=folder,
                conversation=_conversation_for(
                    mailbox=box, message_ids=references, subject=subject, date=now
                ),
                message_id=message_id,
                in_reply_to=in_reply_to,
                references=" ".join(references),
                subject=subject,
                from_name=mailbox.display_name,
                from_address=mailbox.address,
                date=now,
                received_at=now,
                snippet=_snippet(text),
                text_body=text,
                size=len(raw),
                raw=raw_blob,
                is_read=is_sender,
                is_urgent=urgent,
                has_attachments=bool(stored),
                read_receipt_to=mailbox.address if read_receipt else "",
                sent_by=user if is_sender else None,
            )
            Recipient.objects.bulk_create(
                [Recipient(message=copy, kind=RecipientKind.TO, name=a.name, address=a.address)
                 for a in to]
                + [Recipient(message=copy, kind=RecipientKind.CC, name=a.name, address=a.address)
                   for a in cc]
                + ([Recipient(message=copy, kind=RecipientKind.BCC, name=a.name,
                              address=a.address) for a in bcc] if is_sender else [])
            )  # fmt: skip
            Attachment.objects.bulk_create(
                Attachment(
                    message=copy,
                    blob=blob,
                    filename=u.filename[:255],
                    content_type=u.content_type[:127],
                    size=blob.size,
                )
                for u, blob in stored
            )
            if is_sender:
                sender_copy = copy
            else:
                record(
                    event=Event.MESSAGE_DELIVERED_LOCALLY,
                    actor=user,
                    target=copy,
                    meta=meta,
                    extra={"mailbox": box.pk},
                )
        if reply_to is not None:
            Message.objects.filter(pk=reply_to.pk).update(is_answered=True)
        record(
            event=Event.MESSAGE_SENT,
            actor=user,
            target=sender_copy,
            meta=meta,
            extra={
                "mailbox": mailbox.pk,
                "recipients": len(recipients),
                "attachments": len(stored),
                "urgent": urgent,
            },
        )
    logger.info(
        "message sent", extra={"message_pk": sender_copy.pk, "local_copies": len(copies) - 1}
    )
    return sender_copy


@transaction.atomic
def message_mark_read(*, user, message: Message, meta: RequestMeta | None = None) -> None:
    """First opening: mark read and audit it (later openings are not recorded again)."""
    if message.is_read:
        return
    Message.objects.filter(pk=message.pk).update(is_read=True)
    message.is_read = True
    record(event=Event.MESSAGE_READ, actor=user, target=message, meta=meta)


@transaction.atomic
def attachment_download_record(*, user, attachment, meta: RequestMeta | None = None) -> None:
    record(event=Event.ATTACHMENT_DOWNLOADED, actor=user, target=attachment, meta=meta)


def message_deliver_raw(
    *, mailbox: Mailbox, raw: bytes, folder_kind: str = FolderKind.INBOX
) -> Message:
    """File a received RFC 5322 message into ``mailbox`` (the entry point of every incoming
    message: local SMTP gateway, imports, the demo seed). The raw source and each attachment are
    stored encrypted; bodies are kept for display and search (HTML sanitised when shown)."""
    parsed = parse_message(raw)
    if len(raw) > settings.MAILBOX_MAX_MESSAGE_SIZE * 2:
        raise MessageTooLarge(_("Message trop volumineux."))
    raw_blob = blob_store(source=io.BytesIO(raw))
    stored = [(part, blob_store(source=io.BytesIO(part.payload))) for part in parsed.attachments]
    now = timezone.now()
    date = parsed.date or now
    sender = parsed.from_ or parsed.sender
    message_ids = [*parsed.references, *([parsed.in_reply_to] if parsed.in_reply_to else [])]
    with transaction.atomic():
        folder = folders_ensure(mailbox=mailbox)[folder_kind]
        message = Message.objects.create(
            mailbox=mailbox,
            folder=folder,
            conversation=_conversation_for(
                mailbox=mailbox,
                message_ids=message_ids,
                subject=parsed.display_subject,
                date=date,
            ),
            message_id=(parsed.message_id or make_message_id("invalid.local"))[:255],
            in_reply_to=(parsed.in_reply_to or "")[:255],
            references=" ".join(parsed.references[-20:]),
            subject=parsed.display_subject[:500],
            from_name=(sender.name if sender else "")[:200],
            from_address=(sender.address if sender else "")[:254],
            date=date,
            received_at=now,
            snippet=_snippet(parsed.text),
            text_body=parsed.text,
            html_body=parsed.html or "",
            size=len(raw),
            raw=raw_blob,
            is_urgent=parsed.importance == "urgent",
            has_attachments=any(p.disposition != "inline" for p, _b in stored),
            read_receipt_to=(parsed.disposition_notification_to or "")[:254],
        )
        Recipient.objects.bulk_create(
            [Recipient(message=message, kind=RecipientKind.TO, name=a.name[:200],
                       address=a.address[:254]) for a in parsed.to]
            + [Recipient(message=message, kind=RecipientKind.CC, name=a.name[:200],
                         address=a.address[:254]) for a in parsed.cc]
        )  # fmt: skip
        Attachment.objects.bulk_create(
            Attachment(
                message=message,
                blob=blob,
                filename=part.filename[:255],
                content_type=part.content_type[:127],
                size=blob.size,
                content_id=(part.content_id or "")[:255],
                inline=part.disposition == "inline",
            )
            for part, blob in stored
        )
        record(
            event=Event.MESSAGE_DELIVERED_LOCALLY,
            target=message,
            extra={"mailbox": mailbox.pk, "defects": len(parsed.defects)},
        )
    return message
