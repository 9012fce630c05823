"""Secure links: a message to a recipient outside the trust space stays on mssweb; the recipient
gets a link by ordinary e-mail and a one-time code by another channel, then reads, downloads and
replies on a page of the site.

Neither the token of the link nor the code is stored: only the SHA-256 of the token (it is
random and 256 bits long, so a plain hash is enough to find the link and useless to anyone who
reads the database) and an HMAC of the code (keyed by the site's secret and a per-link salt).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class CodeChannel(models.TextChoices):
    SMS = "sms", _("par SMS")
    ORAL = "oral", _("par le correspondant")


class LinkStatus(models.TextChoices):
    SENT = "sent", _("envoyé")
    OPENED = "opened", _("ouvert")
    LOCKED = "locked", _("verrouillé")
    EXPIRED = "expired", _("expiré")
    REVOKED = "revoked", _("révoqué")


class SecureLink(models.Model):
    message = models.ForeignKey(
        "mailbox.Message",
        verbose_name=_("message (copie de l'expéditeur)"),
        on_delete=models.CASCADE,
        related_name="secure_links",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    address = models.CharField(_("destinataire"), max_length=254)
    token_hash = models.CharField(max_length=64, unique=True)  # sha256 hex of the URL token
    code_salt = models.CharField(max_length=32)
    code_hash = models.CharField(max_length=64)  # HMAC-SHA256 hex of salt + code
    code_channel = models.CharField(_("code envoyé"), max_length=4, choices=CodeChannel.choices)
    phone = models.CharField(_("mobile"), max_length=20, blank=True)  # E.164, for SMS codes
    # The code for the sender to read aloud, encrypted, until their message page has shown it
    # once (then emptied).
    code_reveal = models.TextField(blank=True)
    code_sent_at = models.DateTimeField(null=True, blank=True)
    include_subject = models.BooleanField(_("objet dans l'avis"), default=False)
    created_at = models.DateTimeField(_("créé le"), default=timezone.now)
    expires_at = models.DateTimeField(_("expire le"))
    expired_at = models.DateTimeField(null=True, blank=True)  # when the expiry was audited
    revoked_at = models.DateTimeField(_("révoqué le"), null=True, blank=True)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    locked_at = models.DateTimeField(_("verrouillé le"), null=True, blank=True)
    first_opened_at = models.DateTimeField(_("ouvert le"), null=True, blank=True)
    last_opened_at = models.DateTimeField(null=True, blank=True)
    replies_left = models.PositiveSmallIntegerField(_("réponses restantes"))

    class Meta:
        verbose_name = _("lien sécurisé")
        verbose_name_plural = _("liens sécurisés")
        indexes = [
            models.Index(fields=["message"], name="securelink_message"),
            models.Index(
                fields=["expires_at"],
                condition=Q(expired_at__isnull=True),
                name="securelink_to_expire",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pk} → {self.address}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def status(self) -> str:
        if self.revoked_at:
            return LinkStatus.REVOKED
        if self.is_expired:
            return LinkStatus.EXPIRED
        if self.locked_at:
            return LinkStatus.LOCKED
        if self.first_opened_at:
            return LinkStatus.OPENED
        return LinkStatus.SENT

    @property
    def status_label(self) -> str:
        return str(LinkStatus(self.status).label)

    @property
    def is_active(self) -> bool:
        return self.status in (LinkStatus.SENT, LinkStatus.OPENED)


class AccessKind(models.TextChoices):
    OPENED = "open", _("consultation")
    DOWNLOADED = "download", _("téléchargement")
    REPLIED = "reply", _("réponse")


class SecureLinkAccess(models.Model):
    """What the recipient did through the link, for the sender's panel (the audit trail holds
    the same with the chain's guarantees)."""

    link = models.ForeignKey(SecureLink, on_delete=models.CASCADE, related_name="accesses")
    kind = models.CharField(max_length=8, choices=AccessKind.choices)
    attachment = models.ForeignKey(
        "mailbox.Attachment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    filename = models.CharField(max_length=255, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.link_id} {self.kind}"


class CodeFailure(models.Model):
    """A wrong code: counted per address of the visitor (whatever the link) in a sliding window,
    so one machine cannot try codes on many links."""

    link = models.ForeignKey(SecureLink, on_delete=models.CASCADE, related_name="+")
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["ip", "created_at"], name="securelink_failure_ip")]

    def __str__(self) -> str:
        return f"{self.link_id} {self.created_at:%Y-%m-%d %H:%M}"
