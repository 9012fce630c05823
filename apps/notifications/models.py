"""Alerts of new mail: devices that receive Web Push, each user's preferences, and the notices
owed for each new message (sent, or held for the digest or the end of quiet hours)."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class PushSubscription(models.Model):
    """One browser (phone, tablet, computer) that asked for Web Push notifications."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    endpoint = models.URLField(_("adresse du service de notification"), max_length=1000)
    p256dh = models.CharField(max_length=200)  # the browser's public key (base64url, RFC 8291)
    auth = models.CharField(max_length=100)  # the browser's authentication secret (base64url)
    device_label = models.CharField(_("appareil"), max_length=120, blank=True)
    created_at = models.DateTimeField(_("ajouté le"), default=timezone.now)
    last_success_at = models.DateTimeField(_("dernier envoi réussi"), null=True, blank=True)

    class Meta:
        verbose_name = _("appareil notifié")
        verbose_name_plural = _("appareils notifiés")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint"], name="pushsubscription_endpoint_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.pk}"


class EventChoice(models.TextChoices):
    ALL = "all", _("Chaque nouveau message")
    URGENT = "urgent", _("Les messages urgents seulement")
    NONE = "none", _("Aucune notification")


class PushContent(models.TextChoices):
    SENDER = "sender", _("Le nom de l'expéditeur (« Nouveau message sécurisé de Dr X »)")
    COUNT = "count", _("Seulement le nombre de nouveaux messages")


class DigestChoice(models.TextChoices):
    IMMEDIATE = "immediate", _("Tout de suite")
    HOURLY = "hourly", _("Un résumé par heure")
    DAILY = "daily", _("Un résumé par jour")


DIGEST_INTERVAL_MINUTES = {
    DigestChoice.IMMEDIATE: 0,
    DigestChoice.HOURLY: 60,
    DigestChoice.DAILY: 1440,
}


class NotificationPreference(models.Model):
    """How a user wants to hear of new mail. Absent row: the defaults below."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    events = models.CharField(
        _("me prévenir pour"), max_length=8, choices=EventChoice.choices, default=EventChoice.ALL
    )
    push_enabled = models.BooleanField(_("notifications sur mes appareils"), default=True)
    push_content = models.CharField(
        _("la notification affiche"),
        max_length=8,
        choices=PushContent.choices,
        default=PushContent.SENDER,
    )
    digest = models.CharField(
        _("messages non urgents"),
        max_length=10,
        choices=DigestChoice.choices,
        default=DigestChoice.IMMEDIATE,
    )
    quiet_start = models.TimeField(_("début des heures calmes"), null=True, blank=True)
    quiet_end = models.TimeField(_("fin des heures calmes"), null=True, blank=True)
    email_enabled = models.BooleanField(_("avis par e-mail pour les urgences"), default=False)
    personal_email = models.EmailField(_("adresse e-mail personnelle"), blank=True)
    sms_enabled = models.BooleanField(_("avis par SMS pour les urgences"), default=False)
    phone = models.CharField(_("téléphone mobile"), max_length=20, blank=True)
    # To the account's own address (never the personal one): time, address and device only.
    suspicious_login_email = models.BooleanField(
        _("m'avertir par e-mail d'une connexion inhabituelle à mon compte"), default=True
    )
    last_digest_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("préférences de notification")
        verbose_name_plural = _("préférences de notification")

    def __str__(self) -> str:
        return str(self.user_id)


class NoticeStatus(models.TextChoices):
    HELD = "held", _("en attente (résumé ou heures calmes)")
    SENT = "sent", _("envoyée")
    SKIPPED = "skipped", _("sans objet")


class MessageNotice(models.Model):
    """The alert owed to one user for one new message. The unique pair makes notifying
    idempotent (a task run twice alerts once); held rows are the digest queue."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="message_notices"
    )
    message = models.ForeignKey("mailbox.Message", on_delete=models.CASCADE, related_name="notices")
    urgent = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=NoticeStatus.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "message"], name="messagenotice_unique"),
        ]
        indexes = [
            models.Index(
                fields=["user"],
                condition=models.Q(status="held"),
                name="messagenotice_held",
            ),
            models.Index(fields=["created_at"], name="messagenotice_created"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.message_id}"
