from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("en attente")
    DELIVERED = "delivered", _("remis")
    DEFERRED = "deferred", _("différé")
    FAILED = "failed", _("échec")
    READ = "read", _("lu")


# Rows the delivery worker still has to deal with.
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.DEFERRED)


class OutboundDelivery(models.Model):
    """One recipient of one sent message, and where its delivery stands.

    The row is written in the same transaction as the sender's copy, before any broker hears of
    it: the database is the queue. It keeps its own reference to the encrypted raw source, so
    the sender deleting their copy never cancels a delivery. Local recipients get a row too
    (already ``delivered``) so that the sender sees one status list, read receipts included.
    Reports (read receipts we send) have no sender's copy and an empty envelope sender.
    """

    message = models.ForeignKey(
        "mailbox.Message",
        verbose_name=_("message"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    mailbox = models.ForeignKey(
        "mailbox.Mailbox",
        verbose_name=_("boîte d'envoi"),
        on_delete=models.CASCADE,
        related_name="outbound_deliveries",
    )
    msgid = models.CharField(_("Message-ID"), max_length=255)  # without <>
    raw = models.ForeignKey(
        "attachments.StoredBlob",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    envelope_from = models.CharField(_("expéditeur d'enveloppe"), max_length=254, blank=True)
    recipient = models.CharField(_("destinataire"), max_length=254)
    domain = models.CharField(_("domaine"), max_length=253)
    route = models.CharField(_("acheminement"), max_length=16)
    status = models.CharField(
        _("état"), max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("tentatives"), default=0)
    next_attempt_at = models.DateTimeField(_("prochain essai"), default=timezone.now)
    lease_until = models.DateTimeField(_("réservé jusqu'à"), null=True, blank=True)
    expires_at = models.DateTimeField(_("abandon le"))
    last_reply = models.PositiveSmallIntegerField(_("dernière réponse SMTP"), null=True, blank=True)
    enhanced_status = models.CharField(_("statut étendu"), max_length=16, blank=True)
    reason = models.CharField(_("raison"), max_length=300, blank=True)
    dsn_requested = models.BooleanField(_("accusé de remise demandé"), default=False)
    delivered_at = models.DateTimeField(_("remis le"), null=True, blank=True)
    read_at = models.DateTimeField(_("lu le"), null=True, blank=True)
    created_at = models.DateTimeField(_("créé le"), default=timezone.now)

    class Meta:
        verbose_name = _("remise sortante")
        verbose_name_plural = _("remises sortantes")
        indexes = [
            # The claim and the sweep: open rows that are due.
            models.Index(
                fields=["status", "next_attempt_at"],
                condition=Q(status__in=["pending", "deferred"]),
                name="delivery_due",
            ),
            # Receipts coming back name the original Message-ID.
            models.Index(fields=["mailbox", "msgid"], name="delivery_mailbox_msgid"),
        ]

    def __str__(self) -> str:
        return f"{self.pk} → {self.domain}"


class ReceiptMode(models.TextChoices):
    ASK = "ask", _("me demander à chaque fois")
    ALWAYS = "always", _("toujours envoyer")
    NEVER = "never", _("ne jamais envoyer")


class ReceiptPreference(models.Model):
    """What to do when a message asks for a read receipt (default: ask). Patients' messages
    always get one (the patient cannot be refused it)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="receipt_preference"
    )
    mode = models.CharField(
        _("accusés de lecture demandés"),
        max_length=6,
        choices=ReceiptMode.choices,
        default=ReceiptMode.ASK,
    )

    class Meta:
        verbose_name = _("préférence d'accusé de lecture")
        verbose_name_plural = _("préférences d'accusé de lecture")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.mode}"


class ReceiptAnswerKind(models.TextChoices):
    SENT = "sent", _("envoyé")
    IGNORED = "ignored", _("ignoré")


class ReceiptAnswer(models.Model):
    """The read receipt asked by one received message was sent or ignored (asked once only)."""

    message = models.OneToOneField(
        "mailbox.Message", on_delete=models.CASCADE, related_name="receipt_answer"
    )
    kind = models.CharField(max_length=7, choices=ReceiptAnswerKind.choices)
    answered_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.message_id}: {self.kind}"
