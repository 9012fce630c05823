"""Provision an account non-interactively (for operators' scripts).

    printf '%s' "$PASSWORD" | python manage.py create_account --email a.b@dom.mssante.fr \
        --first-name Anne --last-name Bernard --idnat 810001045367 --profession 40 \
        --password-stdin [--specialty SCD01] [--staff] [--totp-secret BASE32]

Without --password-stdin the account gets no usable password and a set-password e-mail is sent.
"""

import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts import services
from apps.accounts.nomenclatures import CIVILITIES, PROFESSIONS


class Command(BaseCommand):
    help = "Create an account (professional or staff) without prompts."

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--first-name", required=True)
        parser.add_argument("--last-name", required=True)
        parser.add_argument("--idnat", default="", help="RPPS 8+11 digits or ADELI 0+9 digits")
        parser.add_argument("--profession", default="", choices=["", *PROFESSIONS])
        parser.add_argument("--specialty", default="")
        parser.add_argument("--civility", default="", choices=["", *CIVILITIES])
        parser.add_argument("--phone", default="")
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
        parser.add_argument("--staff", action="store_true", help="operator staff (admin panel)")
        parser.add_argument("--superuser", action="store_true", help="with --staff: all rights")
        parser.add_argument(
            "--totp-secret", default=None, help="pre-enrol an authenticator with this base32 secret"
        )

    def handle(self, *args, **options):
        password = None
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("--password-stdin: standard input is empty.")
        try:
            user = services.account_create(
                email=options["email"],
                first_name=options["first_name"],
                last_name=options["last_name"],
                password=password,
                idnat=options["idnat"],
                profession_code=options["profession"],
                specialty_code=options["specialty"],
                civility=options["civility"],
                phone=options["phone"],
                is_staff=options["staff"],
                is_superuser=options["staff"] and options["superuser"],
                totp_secret=options["totp_secret"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except services.AccountError as exc:
            raise CommandError(exc.message) from exc
        if password is None:
            from apps.accounts.tasks import send_password_reset_email

            transaction.on_commit(lambda: send_password_reset_email.delay(user.pk))
            self.stdout.write("No password given: a set-password e-mail is queued.")
        self.stdout.write(self.style.SUCCESS(f"Created account {user.pk} ({user.email})."))
