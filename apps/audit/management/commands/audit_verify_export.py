from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import translation
from django.utils.translation import gettext as _

from apps.audit.exports import export_verify


class Command(BaseCommand):
    help = (
        "Check a JSON audit export (a message's trace or a staff search): every row's hash "
        "recomputes from its fields, and every row is the same row of this operator's chain, "
        "itself intact. Prints a summary in French; exits 1 naming the first problem."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help="The JSON export to check.")

    def handle(self, *args, file: str, **options):
        with translation.override("fr"):
            try:
                content = Path(file).read_bytes()
            except OSError as error:
                raise CommandError(
                    _("Impossible de lire %(file)s : %(error)s")
                    % {"file": file, "error": error.strerror or error},
                    returncode=2,
                ) from error
            check = export_verify(content)
            if not check.ok:
                problem = check.problems[0] if check.problems else _("Aucune ligne vérifiée.")
                others = len(check.problems) - 1
                message = _("ÉCHEC : %(problem)s") % {"problem": problem}
                if others > 0:
                    message += " " + _("(et %(count)s autre(s) problème(s))") % {"count": others}
                raise CommandError(message, returncode=1)
            self.stdout.write(
                _(
                    "OK : les %(count)s lignes de l'export sont intactes et identiques à celles "
                    "du journal de l'opérateur."
                )
                % {"count": check.checked}
            )
