"""Write a pair of synthetic Annuaire Santé extracts (the real files' exact format) for demos,
tests and benchmarks::

    manage.py make_directory_sample --people 1540000 --out /tmp/dirbench --zip
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.directory.sample import GENERATIONS, STAMP_RE, write_sample


class Command(BaseCommand):
    help = (
        "Write synthetic PS_LibreAcces_Personne_activite and Extraction_Correspondance_MSSante "
        "extracts (about 1.3 activity rows and 0.35 mailbox rows per person)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--people", type=int, required=True, help="number of professionals")
        parser.add_argument("--out", type=Path, required=True, help="output directory")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--generation", type=int, choices=GENERATIONS, default=56)
        parser.add_argument("--zip", action="store_true", help="write the official zips")
        parser.add_argument("--stamp", default="202611280000", help="YYYYMMDDhhmm")
        parser.add_argument("--mailbox-ratio", type=float, default=0.3)

    def handle(self, *args, people, out, seed, generation, zip, stamp, mailbox_ratio, **options):
        if people < 0:
            raise CommandError("--people must be positive.")
        if not STAMP_RE.match(stamp):
            raise CommandError("--stamp must be YYYYMMDDhhmm (12 digits).")
        if not 0 <= mailbox_ratio <= 1:
            raise CommandError("--mailbox-ratio must be between 0 and 1.")
        files = write_sample(
            people=people,
            out_dir=out,
            seed=seed,
            generation=generation,
            stamp=stamp,
            mailbox_ratio=mailbox_ratio,
            zip=zip,
        )
        self.stdout.write(f"{files.activities_path}: {files.activity_rows} activity rows")
        self.stdout.write(f"{files.mssante_path}: {files.mailbox_rows} mailbox rows")
