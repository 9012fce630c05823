"""Seed a demo operator for `make run`: a domain, professionals with mailboxes, a shared
practice mailbox and a staff account. Runs once; later runs only print the demo logins.

Passwords and TOTP secrets are random, written to var/demo-credentials.txt (mode 600) and
printed, so a newcomer can log in with an authenticator app.
"""

import json
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import services
from apps.accounts.models import Domain, User
from apps.accounts.nomenclatures import luhn_valid
from apps.mailbox.models import Mailbox, MailboxKind, MailboxMembership

WORDS = [
    "lilas",
    "orage",
    "pivert",
    "canne",
    "falaise",
    "ardoise",
    "prairie",
    "cerise",
    "rivage",
    "boussole",
    "lanterne",
    "marelle",
    "noisette",
    "pelote",
    "gravier",
    "sorbier",
    "tilleul",
    "vallon",
    "brindille",
    "mistral",
    "hirondelle",
    "citron",
    "galet",
    "volcan",
]


def rpps(seed: str) -> str:
    """A Luhn-valid RPPS IdNat (8 + 11 digits) built from a 10-digit seed."""
    for key in "0123456789":
        if luhn_valid(seed + key):
            return "8" + seed + key
    raise ValueError(seed)


def passphrase() -> str:
    return "-".join(secrets.choice(WORDS) for _ in range(4)) + f"-{secrets.randbelow(90) + 10}"


PEOPLE = [
    {
        "local": "claire.morel",
        "civility": "DR",
        "first_name": "Claire",
        "last_name": "Morel",
        "idnat": rpps("9970041234"),
        "profession_code": "40",
        "specialty_code": "SCD03",
        "phone": "+33612345678",
        "enrolled": True,
    },
    {
        "local": "paul.lefevre",
        "civility": "DR",
        "first_name": "Paul",
        "last_name": "Lefèvre",
        "idnat": rpps("9970041235"),
        "profession_code": "40",
        "specialty_code": "SCD01",
        "enrolled": True,
    },
    {
        "local": "amelie.durand",
        "civility": "DR",
        "first_name": "Amélie",
        "last_name": "Durand",
        "idnat": rpps("9970041236"),
        "profession_code": "10",
        "specialty_code": "SM54",
        "enrolled": False,
    },
]


class Command(BaseCommand):
    help = "Seed the demo operator (once) and print the demo logins."

    def handle(self, *args, **options):
        path = settings.VAR_DIR / "demo-credentials.json"
        domain_name = settings.MSSWEB_DEMO_DOMAIN
        if Domain.objects.filter(name=domain_name).exists() and path.exists():
            self._seed_trustlist()
            self._print(json.loads(path.read_text()))
            return
        if User.objects.exists():
            self.stdout.write("Accounts already exist: no demo seeded.")
            return
        credentials = self._seed(domain_name)
        self._seed_directory()
        self._seed_mail(domain_name)
        self._seed_trustlist()
        path.write_text(json.dumps(credentials, ensure_ascii=False, indent=2))
        path.chmod(0o600)
        self._print(credentials)

    @transaction.atomic
    def _seed(self, domain_name: str) -> list[dict]:
        domain = Domain.objects.create(name=domain_name, description="Opérateur de démonstration")
        credentials = []
        users = []
        for person in PEOPLE:
            password = passphrase()
            secret = services.new_totp_secret() if person["enrolled"] else None
            user = services.account_create(
                email=f"{person['local']}@{domain_name}",
                password=password,
                totp_secret=secret,
                **{k: v for k, v in person.items() if k not in ("local", "enrolled")},
            )
            users.append(user)
            credentials.append(self._entry(user, password, secret, "professionnel"))
        practice = Mailbox.objects.create(
            address=f"cabinet.lilas@{domain_name}",
            kind=MailboxKind.ORGANISATIONAL,
            domain=domain,
            display_name="Cabinet dentaire des Lilas",
        )
        for user in users[:2]:
            MailboxMembership.objects.create(mailbox=practice, user=user)
        password, secret = passphrase(), services.new_totp_secret()
        staff = services.account_create(
            email=f"support@{domain_name}",
            first_name="Support",
            last_name="Opérateur",
            password=password,
            is_staff=True,
            is_superuser=True,
            totp_secret=secret,
        )
        credentials.append(self._entry(staff, password, secret, "personnel (admin)"))
        return credentials

    def _seed_trustlist(self) -> None:
        """The demo trust list (a few real operators, the demo domain, a test peer), unless a
        list is already in service."""
        from apps.trustlist.services import trustlist_seed_demo

        result = trustlist_seed_demo()
        if result is not None:
            self.stdout.write(f"Demo trust list: {result.trust_list.entry_count} entries.")

    def _seed_mail(self, domain_name: str) -> None:
        from apps.mailbox.demo import seed_demo_mail

        users = {
            key: User.objects.get(email=f"{local}@{domain_name}")
            for key, local in (("claire", "claire.morel"), ("paul", "paul.lefevre"),
                               ("amelie", "amelie.durand"))
        }  # fmt: skip
        practice = Mailbox.objects.get(address=f"cabinet.lilas@{domain_name}")
        count = seed_demo_mail(users=users, practice=practice)
        self.stdout.write(f"Demo mail: {count} messages.")

    def _seed_directory(self) -> None:
        """A synthetic national directory of a few thousand people, in the real format, with the
        demo professionals in it, so search and autocompletion feel real."""
        from apps.directory.extracts import ACTIVITY_HEADER, MAILBOX_HEADER
        from apps.directory.importer import directory_import
        from apps.directory.sample import write_sample

        folder = settings.VAR_DIR / "demo-directory"
        files = write_sample(people=settings.MSSWEB_DEMO_DIRECTORY_PEOPLE, out_dir=folder)
        demo = User.objects.filter(is_staff=False).exclude(idnat="").order_by("pk")
        with files.activities_path.open("a", encoding="utf-8") as out:
            for user in demo:
                row = {
                    "Type d'identifiant PP": user.idnat[0],
                    "Identifiant PP": user.idnat[1:],
                    "Identification nationale PP": user.idnat,
                    "Code civilité d'exercice": user.civility,
                    "Nom d'exercice": user.last_name.upper(),
                    "Prénom d'exercice": user.first_name,
                    "Code profession": user.profession_code,
                    "Libellé profession": user.profession_label,
                    "Code type savoir-faire": "S",
                    "Code savoir-faire": user.specialty_code,
                    "Raison sociale site": "Cabinet dentaire des Lilas",
                    "Code postal (coord. structure)": "69003",
                    "Libellé commune (coord. structure)": "Lyon",
                    "Code Département (structure)": "69",
                }
                out.write("|".join(row.get(h, "") for h in ACTIVITY_HEADER) + "|\n")
        with files.mssante_path.open("a", encoding="utf-8") as out:
            for user in demo:
                row = {
                    "Type de BAL": "PER",
                    "Adresse BAL": user.email,
                    "Identification nationale PP": user.idnat,
                    "Civilité d'exercice": user.civility,
                    "Nom d'exercice": user.last_name.upper(),
                    "Prénom d'exercice": user.first_name,
                    "Libellé Profession": user.profession_label,
                    "L6LIGNEACHEMINEMENT structure BAL": "69003 LYON",
                }
                out.write("|".join(row.get(h, "") for h in MAILBOX_HEADER) + "|\n")
        run = directory_import(activities=files.activities_path, mssante=files.mssante_path)
        self.stdout.write(
            f"Demo directory: {run.activity_rows:,} activities, {run.mailbox_rows:,} mailboxes."
        )

    @staticmethod
    def _entry(user: User, password: str, secret: str | None, role: str) -> dict:
        uri = None
        if secret:
            uri = TOTPDevice.objects.get(user=user, confirmed=True).config_url
        return {
            "email": user.email,
            "role": role,
            "password": password,
            "totp_secret": secret,
            "otpauth_uri": uri,
        }

    def _print(self, credentials: list[dict]) -> None:
        out = self.stdout
        out.write(self.style.MIGRATE_HEADING("\nDemo logins (also in var/demo-credentials.json):"))
        for entry in credentials:
            out.write(f"\n  {entry['email']}  [{entry['role']}]")
            out.write(f"    password:    {entry['password']}")
            if entry["totp_secret"]:
                out.write(f"    TOTP secret: {entry['totp_secret']}")
                out.write(f"    otpauth URI: {entry['otpauth_uri']}")
            else:
                out.write("    no authenticator yet: the first login leads through enrolment")
        out.write(
            "\n  Add the secret (or the otpauth URI) to an authenticator app, or print the "
            "current code with:\n    .venv/bin/python manage.py demo_code EMAIL\n"
        )
