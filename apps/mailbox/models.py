from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class MailboxKind(models.TextChoices):
    PERSONAL = "PER", _("personnelle")
    ORGANISATIONAL = "ORG", _("organisationnelle")


class Mailbox(models.Model):
    """An MSSanté mailbox (BAL) hosted by this operator. Address and kind never change."""

    address = models.EmailField(_("adresse"), max_length=254, unique=True)
    kind = models.CharField(_("type"), max_length=3, choices=MailboxKind.choices)
    domain = models.ForeignKey(
        "accounts.Domain", on_delete=models.PROTECT, related_name="mailboxes"
    )
    display_name = models.CharField(_("nom affiché"), max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("titulaire"),
        on_delete=models.PROTECT,
        related_name="owned_mailboxes",
        null=True,
        blank=True,
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        through="MailboxMembership",
        related_name="shared_mailboxes",
        blank=True,
    )
    hidden_from_directory = models.BooleanField(_("liste rouge"), default=False)
    quota_bytes = models.PositiveBigIntegerField(
        _("quota (octets)"), null=True, blank=True,
        help_text=_("Vide : le quota par défaut de l'opérateur."),
    )  # fmt: skip
    used_bytes = models.PositiveBigIntegerField(_("espace utilisé (octets)"), default=0)
    created_at = models.DateTimeField(_("créée le"), default=timezone.now)

    class Meta:
        verbose_name = _("boîte aux lettres")
        verbose_name_plural = _("boîtes aux lettres")
        ordering = ["address"]
        constraints = [
            # A personal mailbox has exactly one holder; an organisational one has members.
            models.CheckConstraint(
                condition=Q(kind="ORG", owner__isnull=True) | Q(kind="PER", owner__isnull=False),
                name="mailbox_owner_matches_kind",
            ),
            models.UniqueConstraint(
                fields=["owner"], condition=Q(kind="PER"), name="mailbox_one_personal_per_user"
            ),
        ]

    def __str__(self) -> str:
        return self.address

    @property
    def quota(self) -> int:
        return self.quota_bytes or settings.MAILBOX_DEFAULT_QUOTA

    @property
    def usage_percent(self) -> int:
        return min(100, round(100 * self.used_bytes / self.quota)) if self.quota else 0


class MailboxMembership(models.Model):
    """A user's access to an organisational mailbox, granted by staff."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mailbox_memberships"
    )
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("membre")
        verbose_name_plural = _("membres")
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "user"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} → {self.mailbox_id}"


class FolderKind(models.TextChoices):
    INBOX = "inbox", _("Boîte de réception")
    SENT = "sent", _("Envoyés")
    DRAFTS = "drafts", _("Brouillons")
    ARCHIVE = "archive", _("Archives")
    TRASH = "trash", _("Corbeille")
    CUSTOM = "custom", _("Dossier")


SYSTEM_FOLDERS = [
    FolderKind.INBOX,
    FolderKind.SENT,
    FolderKind.DRAFTS,
    FolderKind.ARCHIVE,
    FolderKind.TRASH,
]


class Folder(models.Model):
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="folders")
    kind = models.CharField(max_length=8, choices=FolderKind.choices)
    name = models.CharField(_("nom"), max_length=100, blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("dossier")
        verbose_name_plural = _("dossiers")
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "kind"],
                condition=~Q(kind="custom"),
                name="folder_one_system_kind_per_mailbox",
            ),
            models.UniqueConstraint(
                fields=["mailbox", "parent", "name"],
                condition=Q(kind="custom"),
                name="folder_custom_name_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return self.name if self.kind == FolderKind.CUSTOM else str(self.get_kind_display())


class Conversation(models.Model):
    """Messages of one mailbox linked by Message-ID / In-Reply-To / References."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="conversations")
    subject = models.CharField(max_length=500, blank=True)
    last_message_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.subject


class Message(models.Model):
    """One copy of a message in one mailbox (the sender's copy and each local recipient's copy
    are separate rows sharing the Message-ID). The raw RFC 5322 source is kept, encrypted."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="messages")
    folder = models.ForeignKey(Folder, on_delete=models.PROTECT, related_name="messages")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.PROTECT, related_name="messages"
    )
    message_id = models.CharField(max_length=255)
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.TextField(blank=True)
    subject = models.CharField(max_length=500, blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    from_address = models.CharField(max_length=254)
    date = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    snippet = models.CharField(max_length=200, blank=True)
    text_body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)  # raw; sanitised when shown
    size = models.PositiveIntegerField(default=0)
    raw = models.ForeignKey(
        "attachments.StoredBlob", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    is_read = models.BooleanField(default=False)
    is_flagged = models.BooleanField(default=False)
    is_answered = models.BooleanField(default=False)
    is_forwarded = models.BooleanField(default=False)
    is_urgent = models.BooleanField(default=False)
    has_attachments = models.BooleanField(default=False)
    # Parsing found defects (broken MIME, unreadable headers, refused IHE XDM package): the UI
    # shows a "mal formé" badge.
    malformed = models.BooleanField(default=False)
    read_receipt_to = models.CharField(max_length=254, blank=True)
    # A draft keeps the compose form as typed (recipients may be incomplete): to, cc, bcc, urgent,
    # read_receipt, reply_to, forward_of.
    draft_state = models.JSONField(default=dict, blank=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Le membre qui a envoyé, pour une boîte partagée."),
    )

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        indexes = [
            models.Index(fields=["folder", "-date", "-id"], name="message_folder_date"),
            models.Index(fields=["mailbox", "message_id"], name="message_mailbox_msgid"),
            models.Index(fields=["conversation", "date"], name="message_conversation"),
            models.Index(
                fields=["folder"], condition=Q(is_read=False), name="message_folder_unread"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id}/{self.pk}"


class RecipientKind(models.TextChoices):
    TO = "to", _("À")
    CC = "cc", _("Cc")
    BCC = "bcc", _("Cci")


class Recipient(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="recipients")
    kind = models.CharField(max_length=3, choices=RecipientKind.choices)
    name = models.CharField(max_length=200, blank=True)
    address = models.CharField(max_length=254)

    class Meta:
        indexes = [models.Index(fields=["address"], name="recipient_address")]

    def __str__(self) -> str:
        return self.address


class Attachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    blob = models.ForeignKey("attachments.StoredBlob", on_delete=models.PROTECT, related_name="+")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=127)
    size = models.PositiveIntegerField()
    content_id = models.CharField(max_length=255, blank=True)
    inline = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.filename


class DocumentSex(models.TextChoices):
    FEMALE = "F", _("féminin")
    MALE = "M", _("masculin")
    UNKNOWN = "U", _("inconnu")


# The problems ``apps.ingestion.xdm`` reports (stable codes), as the reader is told them.
DOCUMENT_PROBLEMS = {
    "zip_unreadable": _("L'archive IHE_XDM.ZIP est illisible."),
    "zip_encrypted": _("L'archive IHE_XDM.ZIP est chiffrée."),
    "zip_too_many_entries": _("L'archive IHE_XDM.ZIP contient trop de fichiers."),
    "zip_too_large": _("L'archive IHE_XDM.ZIP est trop volumineuse une fois décompressée."),
    "zip_ratio": _("L'archive IHE_XDM.ZIP est anormalement compressée (bombe zip)."),
    "zip_unsafe_name": _("L'archive IHE_XDM.ZIP contient un chemin de fichier dangereux."),
    "metadata_missing": _("L'archive ne contient pas de METADATA.XML."),
    "metadata_several": _("L'archive contient plusieurs METADATA.XML."),
    "metadata_too_large": _("Le fichier METADATA.XML est trop volumineux."),
    "metadata_unsafe": _("Le fichier METADATA.XML contient des entités XML interdites."),
    "metadata_unreadable": _("Le fichier METADATA.XML est illisible."),
    "no_document": _("METADATA.XML ne décrit aucun document."),
    "document_uri_missing": _("Un document n'indique pas son emplacement (URI)."),
    "document_uri_unsafe": _("Un document indique un emplacement hors de l'archive : refusé."),
    "document_missing": _("Un document décrit dans METADATA.XML est absent de l'archive."),
    "document_unreadable": _("Un document de l'archive est illisible."),
    "size_missing": _("Les métadonnées n'indiquent pas la taille du document."),
    "size_mismatch": _("La taille du document ne correspond pas aux métadonnées."),
    "hash_missing": _("Les métadonnées n'indiquent pas l'empreinte du document."),
    "hash_mismatch": _("L'empreinte du document ne correspond pas aux métadonnées."),
    "cda_unsafe": _("Le document CDA contient des entités XML interdites."),
    "cda_unreadable": _("Le document CDA est illisible."),
    "pdf_invalid": _("Le PDF joint au document est invalide."),
    "ins_invalid": _("L'INS du patient est invalide (clé incorrecte)."),
    "ins_missing": _("Le message annonce un INS qualifié, absent du document."),
    "patient_mismatch": _("Le patient du document CDA diffère de celui des métadonnées."),
    "several_patients": _("Le message concerne plusieurs patients."),
    "codecda_mismatch": _("Le type de document diffère de l'en-tête X-MSS-CODECDA."),
}


class HealthDocument(models.Model):
    """A structured health document (CDA R2 in an IHE XDM package) received with a message:
    who it is about, who wrote it, what it is, and whether its integrity was verified."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="documents")
    patient_ins = models.CharField(_("INS du patient"), max_length=32, blank=True)
    patient_ins_oid = models.CharField(max_length=64, blank=True)
    patient_family_name = models.CharField(_("nom du patient"), max_length=200, blank=True)
    patient_given_names = models.CharField(_("prénoms du patient"), max_length=200, blank=True)
    patient_birth_date = models.DateField(_("date de naissance"), null=True, blank=True)
    patient_sex = models.CharField(max_length=1, choices=DocumentSex.choices, blank=True)
    author_idnat = models.CharField(max_length=32, blank=True)
    author_name = models.CharField(_("auteur"), max_length=200, blank=True)
    institution = models.CharField(_("structure"), max_length=200, blank=True)
    type_code = models.CharField(max_length=64, blank=True)
    type_label = models.CharField(_("type de document"), max_length=255, blank=True)
    type_system = models.CharField(max_length=64, blank=True)
    title = models.CharField(_("titre"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("date du document"), null=True, blank=True)
    replaces_previous = models.BooleanField(_("annule et remplace"), default=False)
    hash_verified = models.BooleanField(_("intégrité vérifiée"), default=False)
    problems = models.TextField(blank=True, help_text=_("Codes des anomalies, un par ligne."))
    rendition = models.ForeignKey(
        Attachment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("document de santé")
        verbose_name_plural = _("documents de santé")
        indexes = [models.Index(fields=["patient_ins"], name="healthdoc_patient_ins")]

    def __str__(self) -> str:
        return f"{self.message_id}/{self.pk}"

    @property
    def patient_name(self) -> str:
        return " ".join(part for part in (self.patient_family_name, self.patient_given_names)
                        if part)  # fmt: skip

    @property
    def problem_labels(self) -> list[str]:
        return [str(DOCUMENT_PROBLEMS.get(code, code)) for code in self.problems.split()]


class PatientRecipient(models.Model):
    """The patient a sent message was written to (Mon espace santé), on the sender's copy: the
    lists and the conversation show the patient's name and INS rather than the raw address."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="patient")
    ins = models.CharField(_("INS"), max_length=15)
    family_name = models.CharField(_("nom de naissance"), max_length=200, blank=True)
    given_names = models.CharField(_("prénoms"), max_length=200, blank=True)
    birth_date = models.DateField(_("date de naissance"), null=True, blank=True)
    no_reply = models.BooleanField(_("le patient ne peut pas répondre"), default=False)

    class Meta:
        verbose_name = _("patient destinataire")
        verbose_name_plural = _("patients destinataires")
        indexes = [models.Index(fields=["ins"], name="patientrecipient_ins")]

    def __str__(self) -> str:
        return f"{self.message_id}/{self.pk}"
