"""The routing decision for a recipient address: where a message to it goes.

- ``LOCAL``: the domain is one of this operator's active domains (``accounts.Domain``). Our own
  domains are in the national list too; local wins.
- ``PATIENT``: the patients' domain (``settings.MSSANTE_PATIENT_DOMAIN``, Mon espace santé).
  It wins over the trust list too.
- ``OPERATOR``: the domain is in the trust list in service: another MSSanté operator, reached
  over SMTP, whose certificate DN must be one of ``trusted_dns(domain)``.
- ``EXTERNAL``: anything else, including a malformed address: outside the trust space.

Domains match exactly (case-insensitively, trailing dot ignored): a subdomain of a listed
domain is not trusted. No cache: each call is one or two indexed queries, and an import or a
change of the operator's domains is seen at once by every process.
"""

from collections.abc import Iterable

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.trustlist.models import TrustedEntry, TrustList


class Route(models.TextChoices):
    LOCAL = "local", _("boîte de l'opérateur")
    OPERATOR = "operator", _("opérateur de l'espace de confiance")
    PATIENT = "patient", _("messagerie patient")
    EXTERNAL = "external", _("hors espace de confiance")


def domain_of(address: str) -> str:
    """``"Claire.Morel@Medecin.MSSante.fr"`` → ``"medecin.mssante.fr"``; ``""`` when the text
    has no domain part."""
    local, at, domain = (address or "").strip().rpartition("@")
    if not at or not local:
        return ""
    return domain.strip().lower().rstrip(".")


def _normalise_domain(domain: str) -> str:
    return (domain or "").strip().lower().rstrip(".")


def routes_for(addresses: Iterable[str]) -> dict[str, Route]:
    """The route of each address (keys are the addresses as given). At most two queries,
    whatever the number of addresses: none when every address is decided without the database."""
    from apps.accounts.models import Domain

    addresses = list(addresses)
    domains = {address: domain_of(address) for address in addresses}
    wanted = {d for d in domains.values() if d}
    patient = _normalise_domain(settings.MSSANTE_PATIENT_DOMAIN)
    local: set[str] = set()
    trusted: set[str] = set()
    if wanted:
        local = set(
            Domain.objects.filter(name__in=wanted, is_active=True).values_list("name", flat=True)
        )
        remaining = wanted - local - {patient}
        if remaining:
            trusted = set(
                TrustedEntry.objects.filter(
                    domain__in=remaining, trust_list__status=TrustList.Status.ACTIVE
                )
                .values_list("domain", flat=True)
                .distinct()
            )
    routes = {}
    for address, domain in domains.items():
        if domain and domain in local:
            routes[address] = Route.LOCAL
        elif domain and domain == patient:
            routes[address] = Route.PATIENT
        elif domain in trusted:
            routes[address] = Route.OPERATOR
        else:
            routes[address] = Route.EXTERNAL
    return routes


def route_for(address: str) -> Route:
    return routes_for([address])[address]


def trusted_dns(domain: str) -> frozenset[str]:
    """The canonical subject DNs (``apps.trustlist.dn.dn_canonical``) of the operator
    certificates the list in service allows for ``domain``; empty when it is not listed.
    Compare with ``dn_of_certificate(peer_der)``."""
    domain = _normalise_domain(domain)
    if not domain:
        return frozenset()
    return frozenset(
        TrustedEntry.objects.filter(
            domain=domain, trust_list__status=TrustList.Status.ACTIVE
        ).values_list("dn_canonical", flat=True)
    )
