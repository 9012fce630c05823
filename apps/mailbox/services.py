"""Changing mail: folders, sending with local delivery, reading."""

import contextlib
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
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.attachments.services import blob_read_verified, blob_store
from apps.audit.events import Event
from apps.audit.services import record
from apps.core.exceptions import ApplicationError
from apps.core.request_meta import RequestMeta
from apps.delivery.services import deliveries_queue
from apps.external.services import (
    ExternalOptions,
    external_dispatch,
    external_policy_refuse,
    external_prepare,
)
from apps.ingestion.build import OutgoingAttachment, build_message, make_message_id
from apps.ingestion.parse import parse_message
from apps.ingestion.sanitize import sanitize_composed_html
from apps.mailbox.documents import documents_attach, documents_extract
from apps.mailbox.models import (
    SYSTEM_FOLDERS,
    Attachment,
    Conversation,
    Folder,
    FolderKind,
    Mailbox,
    Message,
    PatientRecipient,
    Recipient,
    RecipientKind,
)
from apps.mailbox.patients import Patient, ins_from_address, is_patient_address, patient_headers
from apps.notifications.services import new_mail_notify
from apps.trustlist.routing import Route, routes_for

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


def _route_recipients(
    addresses: Iterable[Address],
) -> tuple[dict[str, Mailbox], dict[str, Route]]:
    """Local recipients (their mailboxes) and remote ones (their route): every address must be
    a mailbox of this operator, another operator of the MSSanté trust space, or a patient."""
    wanted = sorted({a.address for a in addresses})
    routes = routes_for(wanted)
    local_addresses = [a for a in wanted if routes[a] == Route.LOCAL]
    found = {m.address: m for m in Mailbox.objects.filter(address__in=local_addresses)}
    for address in wanted:
        if routes[address] == Route.LOCAL and address not in found:
            raise RecipientRefused(
                _("Aucune boîte aux lettres %(address)s chez cet opérateur.") % {"address": address}
            )
    remote = {a: r for a, r in routes.items() if r in (Route.OPERATOR, Route.PATIENT)}
    return found, remote


class ExternalConfirmationNeeded(RecipientRefused):
    """Recipients outside the trust space and no choice made yet for them: the compose page
    shows them and asks how to protect the message (``message_send(external=…)``)."""

    def __init__(self, message: str, *, addresses: list[str]) -> None:
        super().__init__(message)
        self.addresses = addresses


def _external_allowed(
    *, user, addresses: list[str], external: ExternalOptions | None, meta: RequestMeta | None
) -> None:
    """The operator's policy for recipients outside the trust space (``apps.external``)."""
    listed = ", ".join(addresses)
    if settings.EXTERNAL_RECIPIENTS_POLICY == "refuse":
        external_policy_refuse(user=user, addresses=addresses, meta=meta)
        raise RecipientRefused(
            _(
                "%(addresses)s : hors de l'espace de confiance MSSanté. Votre opérateur "
                "n'autorise pas l'envoi vers une messagerie non sécurisée."
            )
            % {"addresses": listed}
        )
    if external is None or not set(addresses) <= external.confirmed:
        raise ExternalConfirmationNeeded(
            _(
                "%(addresses)s : hors de l'espace de confiance MSSanté. Choisissez comment "
                "protéger le message, puis confirmez l'envoi."
            )
            % {"addresses": listed},
            addresses=addresses,
        )


def _one_patient(
    addresses: Iterable[Address], patient: Patient | None, *, mailbox: Mailbox
) -> Patient | None:
    """The patient of the message: the one of the Patient block, or a patient's address typed
    among the recipients (a reply: named as ``mailbox`` last wrote to them). One patient per
    message (MSSanté rule): a second one is refused."""
    typed = [a.address for a in addresses if is_patient_address(a.address)]
    if patient is not None and typed:
        raise RecipientRefused(
            _(
                "Un seul patient par message : le patient est déjà indiqué dans le bloc "
                "« Patient », retirez %(address)s des destinataires."
            )
            % {"address": typed[0]}
        )
    if len(typed) > 1:
        raise RecipientRefused(
            _("Un seul patient par message : écrivez à chaque patient séparément.")
        )
    if patient is None and typed:
        ins = ins_from_address(typed[0])
        if not ins:
            raise RecipientRefused(
                _("%(address)s n'est pas une adresse de patient valide (INS incorrect).")
                % {"address": typed[0]}
            )
        known = (
            PatientRecipient.objects.filter(message__mailbox=mailbox, ins=ins)
            .exclude(family_name="")
            .order_by("-pk")
            .first()
        )
        patient = Patient(
            ins=ins, family_name=known.family_name if known else "",
            given_names=known.given_names if known else "",
            birth_date=known.birth_date if known else None,
        )  # fmt: skip
    return patient


def _check_quota(mailbox: Mailbox, size: int, *, own: bool) -> None:
    mailbox.refresh_from_db(fields=["used_bytes", "quota_bytes"])
    if mailbox.used_bytes + size <= mailbox.quota:
        return
    if own:
        raise MessageTooLarge(
            _("Votre boîte aux lettres est pleine : videz la corbeille ou supprimez des messages.")
        )
    raise RecipientRefused(
        _("La boîte aux lettres de %(address)s est pleine : le message ne peut pas lui être remis.")
        % {"address": mailbox.address}
    )


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


def _upload_reader(upload: OutgoingFile):
    def read() -> BinaryIO:
        upload.stream.seek(0)
        return contextlib.nullcontext(upload.stream)

    return read


def _blob_reader(blob):
    return lambda: blob_read_verified(blob)


def message_send(
    *,
    user,
    mailbox: Mailbox,
    to: list[Address],
    cc: list[Address] = (),
    bcc: list[Address] = (),
    subject: str,
    text: str,
    html: str = "",
    files: list[OutgoingFile] = (),
    urgent: bool = False,
    read_receipt: bool = False,
    reply_to: Message | None = None,
    forward_of: Message | None = None,
    draft: Message | None = None,
    meta: RequestMeta | None = None,
    patient: Patient | None = None,
    external: ExternalOptions | None = None,
) -> Message:
    """Send a message from ``mailbox`` (the user's own or a shared one they belong to).

    Local recipients get their copy in their inbox in the same transaction as the sender's copy
    in Envoyés: both appear together or neither does.

    ``patient``: a patient (Mon espace santé) to write to, added to To. One patient per message
    (the block's, or one patient's address typed in the recipients); a message to a patient
    always asks for a read receipt and is limited to ``MSSANTE_PATIENT_MAX_SIZE``.

    ``external``: the sender's choices for recipients outside the trust space (required when
    there are some, else ``ExternalConfirmationNeeded``; refused outright by the ``refuse``
    policy). They get nothing in clear (``apps.external``); what the sender must be shown once
    (passphrases, codes) is returned in ``message.external_sent``.
    """
    patient = _one_patient([*to, *cc, *bcc], patient, mailbox=mailbox)
    if patient is not None:
        patient_address = patient.address
        if not any(a.address == patient_address for a in to):
            to = [Address(name=patient.display_name[:200], address=patient_address), *to]
        read_receipt = True  # the patient cannot refuse it (MSSanté rule)
    recipients = [*to, *cc, *bcc]
    if not recipients:
        raise RecipientRefused(_("Indiquez au moins un destinataire."))
    local, remote = _route_recipients(recipients)
    outside = sorted({a.address for a in recipients} - set(local) - set(remote))
    if outside:
        _external_allowed(user=user, addresses=outside, external=external, meta=meta)
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
    if patient is not None and total > settings.MSSANTE_PATIENT_MAX_SIZE:
        raise MessageTooLarge(_patient_too_large())

    estimate = total * 2  # the MIME encoding makes attachments about a third bigger
    for box in {mailbox, *local.values()}:
        _check_quota(box, estimate, own=box == mailbox)

    now = timezone.now()
    domain = mailbox.address.rpartition("@")[2]
    message_id = make_message_id(domain)
    references: list[str] = []
    in_reply_to = ""
    if reply_to is not None:
        in_reply_to = reply_to.message_id
        references = [*reply_to.references.split(), reply_to.message_id][-20:]

    # (name, type, encrypted blob, reader of the plaintext for the MIME message)
    stored: list[tuple[str, str, object, object]] = []
    for upload in files:
        upload.stream.seek(0)
        blob = blob_store(source=upload.stream, max_size=settings.MAILBOX_MAX_MESSAGE_SIZE)
        stored.append((upload.filename, upload.content_type, blob, _upload_reader(upload)))
    # Forwarded attachments, and those saved with the draft, keep their encrypted blobs; the MIME
    # copy decrypts them.
    for source in (forward_of, draft):
        if source is None:
            continue
        for attachment in source.attachments.select_related("blob"):
            stored.append(
                (attachment.filename, attachment.content_type, attachment.blob,
                 _blob_reader(attachment.blob))
            )  # fmt: skip

    extra_headers: dict[str, str] = {}
    if patient is not None:
        extra_headers.update(patient_headers(no_reply=patient.no_reply))
    raw = build_message(
        from_=(mailbox.display_name, mailbox.address),
        to=[(a.name, a.address) for a in to],
        cc=[(a.name, a.address) for a in cc],
        bcc=[(a.name, a.address) for a in bcc],
        subject=subject,
        text=text,
        # Written with the editor: cut down to its allow-list (``text`` is its alternative).
        html=(html := sanitize_composed_html(html)) or None,
        attachments=[
            OutgoingAttachment(name, content_type, reader)
            for name, content_type, _blob, reader in stored
        ],
        message_id=message_id,
        in_reply_to=in_reply_to or None,
        references=references,
        date=now,
        urgent=urgent,
        read_receipt_to=mailbox.address if read_receipt else None,
        extra_headers=extra_headers or None,
    )
    if patient is not None and len(raw) > settings.MSSANTE_PATIENT_MAX_SIZE:
        raise MessageTooLarge(_patient_too_large())
    planned = []
    if outside:
        try:
            planned = external_prepare(
                user=user, mailbox=mailbox, addresses=outside, options=external,
                subject=subject, text=text, original_raw=raw, date=now,
                attachments=[(name, reader) for name, _type, _blob, reader in stored],
            )  # fmt: skip
        except ApplicationError as exc:
            raise RecipientRefused(exc.message) from exc
    raw_blob = blob_store(source=io.BytesIO(raw))

    with transaction.atomic():
        copies = [(mailbox, FolderKind.SENT, True)]
        copies += [(box, FolderKind.INBOX, False) for box in local.values() if box != mailbox]
        if mailbox.address in local:  # writing to oneself
            copies.append((mailbox, FolderKind.INBOX, False))
        sender_copy = None
        delivered: list[int] = []  # the recipients' copies, for their alerts
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
                html_body=html,
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
                    filename=name[:255],
                    content_type=content_type[:127],
                    size=blob.size,
                )
                for name, content_type, blob, _reader in stored
            )
            Mailbox.objects.filter(pk=box.pk).update(used_bytes=F("used_bytes") + len(raw))
            if is_sender:
                sender_copy = copy
            else:
                delivered.append(copy.pk)
                record(
                    event=Event.MESSAGE_DELIVERED_LOCALLY,
                    actor=user,
                    target=copy,
                    meta=meta,
                    extra={"mailbox": box.pk},
                )
        # Remote recipients: outbox rows, committed with the sender's copy (the delivery task
        # is enqueued on commit); local ones: already delivered, listed for their status.
        deliveries_queue(
            user=user, message=sender_copy, raw=raw_blob, remote=remote, local=local,
            dsn_requested=read_receipt, meta=meta,
        )  # fmt: skip
        # Outside the trust space: OpenPGP, secure link or encrypted attachments, queued too.
        sender_copy.external_sent = (
            external_dispatch(
                user=user, message=sender_copy, planned=planned, options=external, meta=meta
            )
            if planned
            else []
        )
        if patient is not None:
            PatientRecipient.objects.create(
                message=sender_copy, ins=patient.ins, family_name=patient.family_name[:200],
                given_names=patient.given_names[:200], birth_date=patient.birth_date,
                no_reply=patient.no_reply,
            )  # fmt: skip
            record(
                event=Event.PATIENT_MESSAGE_SENT, actor=user, target=sender_copy, meta=meta,
                extra={"mailbox": mailbox.pk, "no_reply": patient.no_reply},
            )  # fmt: skip
        if reply_to is not None:
            Message.objects.filter(pk=reply_to.pk).update(is_answered=True)
        if forward_of is not None:
            Message.objects.filter(pk=forward_of.pk).update(is_forwarded=True)
        if draft is not None:
            draft.delete()  # sent: the draft has done its job
        new_mail_notify(message_ids=delivered)  # runs after commit
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


def _patient_too_large() -> str:
    return _(
        "Un message à un patient ne peut pas dépasser %(mb)d Mo au total (pièces jointes "
        "comprises) : retirez des pièces jointes."
    ) % {"mb": settings.MSSANTE_PATIENT_MAX_SIZE // 1_000_000}


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

    documents = documents_extract(parsed=parsed)  # IHE XDM package, if any; never raises
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
            malformed=bool(parsed.defects) or bool(documents and documents.rejected),
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
        Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=F("used_bytes") + len(raw))
        record(
            event=Event.MESSAGE_DELIVERED_LOCALLY,
            target=message,
            extra={"mailbox": mailbox.pk, "defects": len(parsed.defects)},
        )
        if documents is not None:
            documents_attach(message=message, extraction=documents)
        if folder_kind == FolderKind.INBOX:
            new_mail_notify(message_ids=[message.pk])  # runs after commit
    return message


# --- Organising: move, trash, purge, flags, folders -------------------------------------------


@transaction.atomic
def messages_move(
    *, user, messages: list[Message], target: Folder, meta: RequestMeta | None = None
) -> int:
    """Move messages of one mailbox to ``target`` (a folder of that same mailbox)."""
    moved = 0
    for message in messages:
        if message.mailbox_id != target.mailbox_id:
            raise MailError(_("Ce dossier appartient à une autre boîte aux lettres."))
        if message.folder_id == target.pk:
            continue
        source = message.folder_id
        Message.objects.filter(pk=message.pk).update(folder=target)
        record(
            event=Event.MESSAGE_MOVED, actor=user, target=message, meta=meta,
            extra={"from_folder": source, "to_folder": target.pk, "to_kind": target.kind},
        )  # fmt: skip
        moved += 1
    return moved


def messages_delete(*, user, messages: list[Message], meta: RequestMeta | None = None) -> int:
    """To the Corbeille; from the Corbeille, deleted for good (the encrypted sources stay until
    no copy uses them; the audit trail keeps who deleted what)."""
    in_trash = [m for m in messages if m.folder.kind == FolderKind.TRASH]
    others = [m for m in messages if m.folder.kind != FolderKind.TRASH]
    count = 0
    with transaction.atomic():
        by_mailbox: dict[int, list[Message]] = {}
        for message in others:
            by_mailbox.setdefault(message.mailbox_id, []).append(message)
        for batch in by_mailbox.values():
            trash = folders_ensure(mailbox=batch[0].mailbox)[FolderKind.TRASH]
            count += messages_move(user=user, messages=batch, target=trash, meta=meta)
        for message in in_trash:
            record(
                event=Event.MESSAGE_DELETED, actor=user, target=message, meta=meta,
                extra={"mailbox": message.mailbox_id},
            )  # fmt: skip
            Mailbox.objects.filter(pk=message.mailbox_id).update(
                used_bytes=Greatest(F("used_bytes") - message.size, 0)
            )
            message.delete()
            count += 1
    return count


def messages_set_flags(
    *, messages: list[Message], read: bool | None = None, flagged: bool | None = None
) -> int:
    changes = {}
    if read is not None:
        changes["is_read"] = read
    if flagged is not None:
        changes["is_flagged"] = flagged
    if not changes:
        return 0
    return Message.objects.filter(pk__in=[m.pk for m in messages]).update(**changes)


@transaction.atomic
def folder_create(
    *, user, mailbox: Mailbox, name: str, parent: Folder | None = None,
    meta: RequestMeta | None = None,
) -> Folder:  # fmt: skip
    """A folder of one's own, at the top level or one level under another own folder."""
    name = " ".join(name.split())[:100]
    if not name:
        raise MailError(_("Donnez un nom au dossier."))
    if parent is not None and (parent.mailbox_id != mailbox.pk or parent.parent_id is not None
                               or parent.kind != FolderKind.CUSTOM):  # fmt: skip
        raise MailError(_("Un dossier ne peut être rangé que dans un dossier principal."))
    if Folder.objects.filter(mailbox=mailbox, parent=parent, kind=FolderKind.CUSTOM,
                             name__iexact=name).exists():  # fmt: skip
        raise MailError(_("Un dossier porte déjà ce nom."))
    folder = Folder.objects.create(
        mailbox=mailbox, kind=FolderKind.CUSTOM, name=name, parent=parent
    )
    record(event=Event.FOLDER_CHANGED, actor=user, target=folder, meta=meta,
           extra={"action": "created"})  # fmt: skip
    return folder


@transaction.atomic
def folder_rename(*, user, folder: Folder, name: str, meta: RequestMeta | None = None) -> Folder:
    name = " ".join(name.split())[:100]
    if folder.kind != FolderKind.CUSTOM or not name:
        raise MailError(_("Ce dossier ne peut pas être renommé ainsi."))
    if Folder.objects.filter(mailbox=folder.mailbox_id, parent=folder.parent_id,
                             kind=FolderKind.CUSTOM, name__iexact=name).exclude(
                                 pk=folder.pk).exists():  # fmt: skip
        raise MailError(_("Un dossier porte déjà ce nom."))
    folder.name = name
    folder.save(update_fields=["name"])
    record(event=Event.FOLDER_CHANGED, actor=user, target=folder, meta=meta,
           extra={"action": "renamed"})  # fmt: skip
    return folder


@transaction.atomic
def folder_delete(*, user, folder: Folder, meta: RequestMeta | None = None) -> None:
    if folder.kind != FolderKind.CUSTOM:
        raise MailError(_("Les dossiers du système ne se suppriment pas."))
    if folder.messages.exists() or folder.children.exists():
        raise MailError(_("Videz le dossier avant de le supprimer."))
    record(event=Event.FOLDER_CHANGED, actor=user, target=folder, meta=meta,
           extra={"action": "deleted"})  # fmt: skip
    folder.delete()


# --- Drafts -----------------------------------------------------------------------------------

DRAFT_FIELDS = (
    "to", "cc", "bcc", "urgent", "read_receipt", "reply_to", "forward_of",
    "patient_ins", "patient_family_name", "patient_given_names", "patient_birth_date",
    "patient_no_reply",
)  # fmt: skip


def draft_save(
    *,
    user,
    mailbox: Mailbox,
    draft: Message | None,
    subject: str,
    text: str,
    html: str = "",
    state: dict,
    files: list[OutgoingFile] = (),
) -> Message:
    """Save what is being written (recipients as typed, even incomplete) in Brouillons."""
    stored = [
        (upload, blob_store(source=upload.stream, max_size=settings.MAILBOX_MAX_MESSAGE_SIZE))
        for upload in files
    ]
    now = timezone.now()
    state = {key: state.get(key) for key in DRAFT_FIELDS}
    with transaction.atomic():
        folder = folders_ensure(mailbox=mailbox)[FolderKind.DRAFTS]
        if draft is None:
            draft = Message(
                mailbox=mailbox,
                conversation=Conversation.objects.create(mailbox=mailbox, subject=subject[:500]),
                message_id=make_message_id(mailbox.address.rpartition("@")[2]),
                from_name=mailbox.display_name,
                from_address=mailbox.address,
                is_read=True,
            )
        draft.mailbox = mailbox
        draft.folder = folder
        draft.subject = subject[:500]
        draft.text_body = text
        draft.html_body = sanitize_composed_html(html)
        draft.snippet = _snippet(text)
        draft.date = now
        draft.draft_state = state
        draft.sent_by = user
        draft.has_attachments = draft.has_attachments or bool(stored)
        draft.save()
        Attachment.objects.bulk_create(
            Attachment(message=draft, blob=blob, filename=upload.filename[:255],
                       content_type=upload.content_type[:127], size=blob.size)
            for upload, blob in stored
        )  # fmt: skip
    return draft


@transaction.atomic
def draft_discard(*, user, draft: Message, meta: RequestMeta | None = None) -> None:
    if draft.folder.kind != FolderKind.DRAFTS:
        raise MailError(_("Ce message n'est pas un brouillon."))
    record(event=Event.DRAFT_DISCARDED, actor=user, target=draft, meta=meta)
    draft.delete()
