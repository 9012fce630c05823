"""Reading mail: the only way to reach a mailbox, folder, message or attachment, and access
control lives here once — anything outside the user's own and shared mailboxes is a 404."""

from datetime import datetime

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from apps.mailbox.models import (
    Attachment,
    Folder,
    FolderKind,
    HealthDocument,
    Mailbox,
    Message,
    PatientRecipient,
    Recipient,
)
from apps.mailbox.patients import PatientBadge, ins_from_address, patient_domain

PAGE_SIZE = 50


def mailboxes_for_user(*, user) -> QuerySet[Mailbox]:
    """The mailboxes ``user`` may open: their personal one first, then shared ones."""
    return (
        Mailbox.objects.filter(Q(owner=user) | Q(memberships__user=user))
        .distinct()
        .order_by("-kind", "address")  # PER before ORG
    )


def mailbox_get_for_user(*, user, mailbox_id: int) -> Mailbox:
    mailbox = mailboxes_for_user(user=user).filter(pk=mailbox_id).first()
    if mailbox is None:
        raise Http404
    return mailbox


def folder_get_for_user(*, user, mailbox_id: int, kind: str) -> Folder:
    """A system folder by kind ("inbox"…), or one's own folder by its id."""
    mailbox = mailbox_get_for_user(user=user, mailbox_id=mailbox_id)
    if kind.isdigit():
        folder = mailbox.folders.filter(pk=int(kind), kind=FolderKind.CUSTOM).first()
    else:
        folder = mailbox.folders.filter(kind=kind).exclude(kind=FolderKind.CUSTOM).first()
    if folder is None:
        raise Http404
    return folder


def messages_get_for_user(*, user, mailbox_id: int, ids: list[int]) -> list[Message]:
    """The messages among ``ids`` that are in that mailbox, which the user may open."""
    mailbox = mailbox_get_for_user(user=user, mailbox_id=mailbox_id)
    return list(
        Message.objects.filter(mailbox=mailbox, pk__in=ids).select_related("folder", "mailbox")
    )


def folders_with_unread(*, mailbox: Mailbox) -> list[Folder]:
    """System folders first, then one's own (each followed by its sub-folders)."""
    order = {kind: n for n, kind in enumerate(FolderKind.values)}
    folders = list(mailbox.folders.order_by("name"))
    # Counted from the partial index on unread messages, not by joining every message.
    unread = dict(
        Message.objects.filter(folder__in=folders, is_read=False)
        .order_by()
        .values_list("folder_id")
        .annotate(n=Count("id"))
    )
    for folder in folders:
        folder.unread = unread.get(folder.pk, 0)
    by_id = {f.pk: f for f in folders}

    def key(folder: Folder):
        top = by_id.get(folder.parent_id, folder)
        return (order[top.kind], top.name.lower(), folder.parent_id is not None,
                folder.name.lower())  # fmt: skip

    return sorted(folders, key=key)


def folder_messages(
    *,
    folder: Folder,
    before: tuple[datetime, int] | None = None,
    limit: int = PAGE_SIZE,
    patient_ins: str = "",
) -> list[Message]:
    """Newest first, keyset-paginated on (date, id). With ``patient_ins``: the messages of the
    whole mailbox (but Corbeille and Brouillons) about that patient: carrying a health document
    about them, written to them (Mon espace santé) or received from them. Each row comes with
    its ``patient`` (``PatientRecipient``) joined, for ``patients_attach``."""
    if patient_ins:
        addresses = _patient_addresses(patient_ins)
        documents = HealthDocument.objects.filter(patient_ins=patient_ins)
        written = PatientRecipient.objects.filter(ins=patient_ins)
        received = Recipient.objects.filter(address__in=addresses)
        qs = (
            Message.objects.filter(mailbox_id=folder.mailbox_id)
            .filter(
                Q(pk__in=documents.values("message_id"))
                | Q(pk__in=written.values("message_id"))
                | Q(from_address__in=addresses)
                | Q(pk__in=received.values("message_id"))
            )
            .exclude(folder__kind__in=(FolderKind.TRASH, FolderKind.DRAFTS))
        )
    else:
        qs = Message.objects.filter(folder=folder)
    if before is not None:
        date, pk = before
        # The first condition is an index range; the second settles ties on the date.
        qs = qs.filter(date__lte=date).filter(Q(date__lt=date) | Q(date=date, id__lt=pk))
    qs = qs.order_by("-date", "-id").only(
        "id", "subject", "from_name", "from_address", "date", "snippet", "is_read",
        "is_flagged", "is_urgent", "has_attachments", "malformed", "folder_id", "mailbox_id",
        *PATIENT_FIELDS,
    ).select_related("patient")  # fmt: skip
    if folder.kind in (FolderKind.SENT, FolderKind.DRAFTS):
        qs = qs.prefetch_related("recipients")  # the list shows whom it was sent to
    return list(qs[: limit + 1])


PATIENT_FIELDS = (
    "patient__id", "patient__ins", "patient__family_name", "patient__given_names",
    "patient__birth_date",
)  # fmt: skip


def _patient_addresses(ins: str) -> list[str]:
    """The spellings of a patient's address as stored (``2A`` typed as ``2a``…)."""
    address = f"{ins}@{patient_domain()}"
    return sorted({address, address.lower()})


def patients_attach(*, messages: list[Message]) -> None:
    """Set ``message.patient_badge`` (a ``PatientBadge``, or None) on each of ``messages``: the
    patient a sent message was written to, or the patient who wrote a received one (named when
    this mailbox once wrote to them). At most two queries, none when the rows come with their
    ``patient`` joined and none is from a patient."""
    uncached = [m.pk for m in messages if not Message.patient.is_cached(m)]
    known: dict[int, PatientRecipient] = {}
    if uncached:
        known = {p.message_id: p for p in PatientRecipient.objects.filter(message_id__in=uncached)}
    senders = {m.pk: ins_from_address(m.from_address) for m in messages}
    named: dict[tuple[int, str], PatientRecipient] = {}
    wanted = {ins for ins in senders.values() if ins}
    if wanted:
        for row in (
            PatientRecipient.objects.filter(
                ins__in=wanted, message__mailbox_id__in={m.mailbox_id for m in messages}
            )
            .exclude(family_name="")
            .select_related("message")
            .only("ins", "family_name", "given_names", "birth_date", "message__mailbox_id")
            .order_by("pk")
        ):
            named[(row.message.mailbox_id, row.ins)] = row  # the latest wins
    for message in messages:
        if Message.patient.is_cached(message):
            patient = getattr(message, "patient", None)
        else:
            patient = known.get(message.pk)
        # True: the badge stands for the sender; False: for a recipient.
        message.patient_sender = patient is None and bool(senders[message.pk])
        if message.patient_sender:
            patient = named.get((message.mailbox_id, senders[message.pk]))
            if patient is None:
                message.patient_badge = PatientBadge(ins=senders[message.pk])
                continue
        message.patient_badge = patient and PatientBadge(
            ins=patient.ins, family_name=patient.family_name, given_names=patient.given_names,
            birth_date=patient.birth_date,
        )  # fmt: skip


def patient_badge_in_mailbox(*, mailbox: Mailbox, patient_ins: str) -> PatientBadge | None:
    """The patient of ``?patient=<INS>`` as this mailbox (the user's, already checked) knows
    them: from a message written to them, else from a health document; None if neither."""
    sent = (
        PatientRecipient.objects.filter(message__mailbox=mailbox, ins=patient_ins)
        .exclude(family_name="")
        .order_by("-pk")
        .first()
    )
    if sent is not None:
        return PatientBadge(
            ins=sent.ins, family_name=sent.family_name, given_names=sent.given_names,
            birth_date=sent.birth_date,
        )  # fmt: skip
    document = patient_document_in_mailbox(mailbox=mailbox, patient_ins=patient_ins)
    if document is not None:
        return PatientBadge(
            ins=patient_ins, family_name=document.patient_family_name,
            given_names=document.patient_given_names, birth_date=document.patient_birth_date,
        )  # fmt: skip
    return None


def message_get_for_user(*, user, message_id: int) -> Message:
    message = (
        Message.objects.filter(pk=message_id, mailbox__in=mailboxes_for_user(user=user))
        .select_related("mailbox", "folder", "conversation")
        .first()
    )
    if message is None:
        raise Http404
    return message


def conversation_messages(*, message: Message) -> list[Message]:
    return list(
        Message.objects.filter(conversation_id=message.conversation_id)
        .exclude(folder__kind=FolderKind.TRASH)
        .select_related("folder", "patient")
        .prefetch_related("recipients", "attachments", "documents")
        .order_by("date", "id")
    )


def attachment_get_for_user(*, user, attachment_id: int) -> Attachment:
    attachment = (
        Attachment.objects.filter(
            pk=attachment_id, message__mailbox__in=mailboxes_for_user(user=user)
        )
        .select_related("blob", "message")
        .first()
    )
    if attachment is None:
        raise Http404
    return attachment


def patient_document_in_mailbox(*, mailbox: Mailbox, patient_ins: str) -> HealthDocument | None:
    """The latest health document about that patient in ``mailbox`` (the user's, already
    checked), to name the patient above a filtered list; None if there is none."""
    return (
        HealthDocument.objects.filter(message__mailbox=mailbox, patient_ins=patient_ins)
        .order_by("-message__date", "-pk")
        .first()
    )
