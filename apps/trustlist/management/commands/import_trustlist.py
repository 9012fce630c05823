"""Import the MSSanté trust list and put it in service (atomically).

    python manage.py import_trustlist PATH_OR_URL [--sha256 HEX|CHECKSUM_FILE]

Exit 1 when the list is refused; the list in service is then kept.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.trustlist.parse import TrustListError
from apps.trustlist.services import trustlist_import


class Command(BaseCommand):
    help = "Import the MSSanté trust list (listeblanchemssante.xml) and put it in service."

    def add_arguments(self, parser):
        parser.add_argument("source", help="path or http(s) URL of listeblanchemssante.xml")
        parser.add_argument(
            "--sha256",
            help="expected SHA-256 (64 hex characters, or a checksum file's path or URL)",
        )

    def handle(self, *args, source: str, sha256: str | None, **options):
        started = time.monotonic()
        try:
            result = trustlist_import(source=source, sha256=sha256)
        except TrustListError as exc:
            raise CommandError(
                _("Import refusé, la liste en service est conservée : %(reason)s")
                % {"reason": exc.message},
                returncode=1,
            ) from exc
        trust_list = result.trust_list
        out = self.stdout
        if result.unchanged:
            out.write(
                self.style.SUCCESS(
                    _(
                        "Liste inchangée (même empreinte SHA-256) : la liste n° %(id)s reste "
                        "en service."
                    )
                    % {"id": trust_list.pk}
                )
            )
        else:
            out.write(
                self.style.SUCCESS(
                    _("Liste de confiance n° %(id)s en service.") % {"id": trust_list.pk}
                )
            )
        generated = (
            timezone.localtime(trust_list.generated_at).strftime("%d/%m/%Y %H:%M")
            if trust_list.generated_at
            else _("inconnue")
        )
        rows = [
            (_("générée le"), generated),
            (_("entrées"), f"{trust_list.entry_count:,}".replace(",", " ")),
            (_("domaines"), f"{trust_list.domain_count:,}".replace(",", " ")),
            (_("DN opérateurs"), f"{trust_list.dn_count:,}".replace(",", " ")),
            (_("entrées ignorées"), f"{trust_list.rejected_count:,}".replace(",", " ")),
            (_("SHA-256"), trust_list.sha256),
            (_("durée"), f"{time.monotonic() - started:.1f} s".replace(".", ",")),
        ]
        for label, value in rows:
            out.write(f"  {label + ' :':<20} {value}")
        for reason, count in trust_list.report.get("reasons", {}).items():
            out.write(f"    {count:>6}  {reason}")
