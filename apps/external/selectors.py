"""Reading what a user may see of external recipients: their routes, and the OpenPGP keys on
their own contacts (never anyone else's)."""

from collections.abc import Iterable

from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils import timezone

from apps.directory.models import Contact
from apps.external.models import ContactKey
from apps.trustlist.routing import Route, routes_for


def external_addresses(addresses: Iterable[str]) -> list[str]:
    """The addresses (lower-cased, in order, once each) outside the trust space."""
    wanted = list(dict.fromkeys(a.strip().lower() for a in addresses if a and a.strip()))
    routes = routes_for(wanted)
    return [a for a in wanted if routes[a] == Route.EXTERNAL]


def contact_keys_for(*, user, addresses: Iterable[str]) -> dict[str, ContactKey]:
    """The newest key still valid (by its recorded expiry) on ``user``'s contact for each
    address that has one. One query."""
    addresses = [a.lower() for a in addresses]
    if not addresses:
        return {}
    now = timezone.now()
    keys: dict[str, ContactKey] = {}
    for key in (
        ContactKey.objects.filter(contact__owner=user, contact__email__in=addresses)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .select_related("contact")
        .order_by("-created_at")
    ):
        keys.setdefault(key.contact.email.lower(), key)
    return keys


def contacts_with_keys(*, user) -> list[Contact]:
    """``user``'s contacts, each with its keys (``contact.openpgp_keys.all()``), two queries."""
    return list(Contact.objects.filter(owner=user).prefetch_related("openpgp_keys").order_by("key"))


def contact_key_get_for_user(*, user, key_id: int) -> ContactKey:
    return get_object_or_404(
        ContactKey.objects.select_related("contact"), pk=key_id, contact__owner=user
    )


def contact_get_for_user(*, user, contact_id: int) -> Contact:
    return get_object_or_404(Contact, pk=contact_id, owner=user)
