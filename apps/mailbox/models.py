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
