from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ContactKey(models.Model):
    """An OpenPGP public key a user imported on one of their contacts: messages to that
    contact outside the trust space are encrypted to it (PGP/MIME).

    The key material itself lives in the operator's GnuPG home (``apps.external.openpgp``);
    the row says whose contact it belongs to, and its fingerprint and validity at import."""

    contact = models.ForeignKey(
        "directory.Contact",
        verbose_name=_("contact"),
        on_delete=models.CASCADE,
        related_name="openpgp_keys",
    )
    fingerprint = models.CharField(_("empreinte"), max_length=64)
    uids = models.CharField(_("identités"), max_length=500, blank=True)
    key_created_at = models.DateTimeField(_("clé créée le"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expire le"), null=True, blank=True)
    created_at = models.DateTimeField(_("importée le"), default=timezone.now)

    class Meta:
        verbose_name = _("clé OpenPGP d'un contact")
        verbose_name_plural = _("clés OpenPGP des contacts")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "fingerprint"], name="contactkey_contact_fingerprint"
            ),
        ]
        indexes = [models.Index(fields=["fingerprint"], name="contactkey_fingerprint")]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.fingerprint}"

    @property
    def fingerprint_display(self) -> str:
        """``"09DB C624 BA81 …"``: groups of four, as GnuPG and Kleopatra show it."""
        return " ".join(self.fingerprint[i : i + 4] for i in range(0, len(self.fingerprint), 4))
