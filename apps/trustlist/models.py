"""The MSSanté trust list ("liste blanche") in service, and the history of its imports.

An import writes a new ``TrustList`` row and its ``TrustedEntry`` rows, marks the previous list
superseded and deletes the previous entries, all in one transaction: readers see the old list or
the new one, never half of one. The history rows stay (counts, checksum, source); a refused
import leaves a ``failed`` row with its reason and changes nothing else.
"""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class TrustList(models.Model):
    """One import of the ANS list: where it came from, its checksum, what it held."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("en service")
        SUPERSEDED = "superseded", _("remplacée")
        FAILED = "failed", _("refusée")

    status = models.CharField(_("état"), max_length=10, choices=Status.choices)
    source = models.CharField(_("source"), max_length=500, blank=True)
    sha256 = models.CharField(_("empreinte SHA-256"), max_length=64, blank=True)
    generated_at = models.DateTimeField(_("générée le"), null=True, blank=True)
    imported_at = models.DateTimeField(_("importée le"), default=timezone.now)
    # Last time the daily refresh found the same file again (nothing to replace).
    checked_at = models.DateTimeField(_("vérifiée le"), null=True, blank=True)
    entry_count = models.PositiveIntegerField(_("entrées"), default=0)
    domain_count = models.PositiveIntegerField(_("domaines"), default=0)
    dn_count = models.PositiveIntegerField(_("DN opérateurs"), default=0)
    rejected_count = models.PositiveIntegerField(_("entrées ignorées"), default=0)
    # {"reasons": {reason: count}, "samples": [{"entry": n, "reason": …}, …]}: public data only.
    report = models.JSONField(_("rapport"), default=dict, blank=True)
    error = models.TextField(_("erreur"), blank=True)

    class Meta:
        verbose_name = _("liste de confiance")
        verbose_name_plural = _("listes de confiance (historique des imports)")
        ordering = ["-imported_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="trustlist_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.imported_at:%Y-%m-%d %H:%M} {self.get_status_display()}"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class TrustedEntry(models.Model):
    """One ``<Domaine>`` of the list in service: a domain and one operator certificate DN allowed
    for it. A domain served through several certificates has several entries."""

    trust_list = models.ForeignKey(
        TrustList, on_delete=models.CASCADE, related_name="entries", verbose_name=_("liste")
    )
    domain = models.CharField(_("domaine"), max_length=253)
    description = models.CharField(_("description"), max_length=500, blank=True)
    dn = models.CharField(_("DN du certificat opérateur"), max_length=1000)
    # apps.trustlist.dn.dn_canonical(dn): what peer certificates are compared with.
    dn_canonical = models.CharField(_("DN canonique"), max_length=1000)
    responsible_contact = models.CharField(_("contact responsable"), max_length=500, blank=True)
    support_contact = models.CharField(_("contact support"), max_length=500, blank=True)
    date_maj = models.DateTimeField(_("mise à jour"), null=True, blank=True)

    class Meta:
        verbose_name = _("domaine de confiance")
        verbose_name_plural = _("domaines de confiance")
        ordering = ["domain", "dn_canonical"]
        indexes = [models.Index(fields=["domain"], name="trustlist_entry_domain")]
        constraints = [
            models.CheckConstraint(
                condition=Q(domain=Lower("domain")), name="trustedentry_domain_lowercase"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.domain} ← {self.dn}"
