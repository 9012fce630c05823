"""Mail received by the SMTP/LMTP gateway, and what ingestion made of it per recipient.

An ``InboundMessage`` row is the gateway's promise: it exists (with its encrypted raw source)
before the peer hears ``250``, and ingestion works from it until it is filed, or quarantined for
the staff to look at. Nothing else holds accepted mail.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class InboundStatus(models.TextChoices):
    ACCEPTED = "accepted", _("acceptée, à distribuer")
    INGESTED = "ingested", _("distribuée")
    QUARANTINED = "quarantined", _("en quarantaine")


class InboundProtocol(models.TextChoices):
    SMTP = "smtp", "SMTP"
    LMTP = "lmtp", "LMTP"


class InboundMessage(models.Model):
    """One message as a peer handed it over: the bytes received (encrypted), the envelope and
    the channel. ``sha256`` is the digest of those bytes, before any trace header is added."""

    raw = models.ForeignKey("attachments.StoredBlob", on_delete=models.PROTECT, related_name="+")
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    message_id = models.CharField(_("Message-ID"), max_length=255, blank=True)
    mail_from = models.CharField(_("expéditeur (enveloppe)"), max_length=320, blank=True)
    rcpt_tos = models.JSONField(_("destinataires (enveloppe)"), default=list)
    protocol = models.CharField(
        max_length=4, choices=InboundProtocol.choices, default=InboundProtocol.SMTP
    )
    peer_ip = models.GenericIPAddressField(_("adresse du pair"), null=True, blank=True)
    helo = models.CharField(_("nom annoncé (EHLO)"), max_length=255, blank=True)
    tls_version = models.CharField(max_length=16, blank=True)
    tls_cipher = models.CharField(max_length=100, blank=True)
    client_cert_dn = models.CharField(_("DN du certificat client"), max_length=1000, blank=True)
    received_at = models.DateTimeField(_("reçu le"), default=timezone.now)
    status = models.CharField(
        _("état"), max_length=12, choices=InboundStatus.choices, default=InboundStatus.ACCEPTED
    )
    attempts = models.PositiveIntegerField(_("tentatives"), default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A worker holds the row until then; another may take it over afterwards (killed worker).
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(_("dernière erreur"), max_length=300, blank=True)
    ingested_at = models.DateTimeField(_("distribué le"), null=True, blank=True)

    class Meta:
        verbose_name = _("message entrant")
        verbose_name_plural = _("messages entrants")
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="accepted"),
                name="inbound_pending",
            ),
            models.Index(fields=["status", "-received_at"], name="inbound_status"),
            models.Index(fields=["sha256"], name="inbound_sha256"),
        ]

    def __str__(self) -> str:
        return f"inbound {self.pk} ({self.status})"


class DeliveryOutcome(models.TextChoices):
    FILED = "filed", _("classé dans la boîte")
    ABSORBED = "absorbed", _("accusé rattaché à l'envoi")
    DUPLICATE = "duplicate", _("doublon d'un message déjà reçu")


class InboundDelivery(models.Model):
    """What ingestion did for one recipient mailbox of one inbound message.

    ``dedupe_key`` (Message-ID and digest of the bytes) is unique per mailbox, so a peer that
    sends the same message again after losing our ``250`` cannot give the recipient a second
    copy, even when two workers race: the second row is recorded as a duplicate.
    """

    inbound = models.ForeignKey(InboundMessage, on_delete=models.CASCADE, related_name="deliveries")
    mailbox = models.ForeignKey(
        "mailbox.Mailbox", on_delete=models.CASCADE, related_name="inbound_deliveries"
    )
    message = models.ForeignKey(
        "mailbox.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(max_length=10, choices=DeliveryOutcome.choices)
    # NULL for duplicates: outside the unique constraint below.
    dedupe_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("distribution entrante")
        verbose_name_plural = _("distributions entrantes")
        constraints = [
            models.UniqueConstraint(
                fields=["inbound", "mailbox"], name="inbound_delivery_once_per_mailbox"
            ),
            models.UniqueConstraint(
                fields=["mailbox", "dedupe_key"],
                condition=Q(dedupe_key__isnull=False),
                name="inbound_delivery_no_duplicate",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.inbound_id} → {self.mailbox_id} ({self.outcome})"
