"""Import the Annuaire Santé extracts (replaces the directory in service atomically).

    python manage.py import_directory --activities PS_LibreAcces_Personne_activite_….txt|.zip \
        --mssante Extraction_Correspondance_MSSante_….txt|.zip [--force]

Without paths, the configured DIRECTORY_ACTIVITIES_SOURCE / DIRECTORY_MSSANTE_SOURCE (paths or
URLs) are used. Exit 1 when the import is refused; the directory in service is then kept.
"""

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.directory import services
from apps.directory.importer import DirectoryImportError, directory_import

LABELS = {"mssante": "boîtes MSSanté", "activities": "activités"}


class Command(BaseCommand):
    help = "Import the national directory extracts into the spare slot, then put it in service."

    def add_arguments(self, parser):
        parser.add_argument("--activities", type=Path, help="PS_LibreAcces_Personne_activite file")
        parser.add_argument("--mssante", type=Path, help="Extraction_Correspondance_MSSante file")
        parser.add_argument(
            "--force", action="store_true",
            help="accept an extract much smaller than the one in service",
        )  # fmt: skip

    def handle(self, *args, activities, mssante, force, **options):
        started = time.monotonic()
        progress = self._progress if sys.stderr.isatty() else None
        try:
            if activities or mssante:
                if not (activities and mssante):
                    raise CommandError("Give both --activities and --mssante (or neither).")
                run = directory_import(
                    activities=activities, mssante=mssante, progress=progress, force=force
                )
            else:
                run = services.directory_import_from_sources(force=force)
                if run is None:
                    raise CommandError(
                        "No files given and DIRECTORY_ACTIVITIES_SOURCE / "
                        "DIRECTORY_MSSANTE_SOURCE are not set."
                    )
        except DirectoryImportError as exc:
            if progress:
                sys.stderr.write("\n")
            raise CommandError(
                f"Import refused, the directory in service is kept: {exc.message}", returncode=1
            ) from exc
        if progress:
            sys.stderr.write("\n")
        self._summary(run, time.monotonic() - started)

    def _progress(self, kind: str, rows: int, elapsed: float) -> None:
        rate = rows / elapsed if elapsed else 0
        sys.stderr.write(
            f"\r  {LABELS.get(kind, kind)}: {rows:>10,} lignes  {rate:>9,.0f} lignes/s "
        )
        sys.stderr.flush()

    def _summary(self, run, seconds: float) -> None:
        out = self.stdout
        out.write(self.style.SUCCESS(f"Directory import {run.pk} in service (slot {run.slot})."))
        out.write(f"  activities kept:   {run.activity_rows:,}")
        out.write(f"  mailboxes kept:    {run.mailbox_rows:,}")
        out.write(f"  people:            {run.report.get('people', 0):,}")
        out.write(f"  lines rejected:    {run.rejected_rows:,}")
        for reason, count in run.report.get("reasons", {}).items():
            out.write(f"    {count:>8,}  {reason}")
        for sample in run.report.get("samples", [])[:10]:
            out.write(f"    e.g. {sample['file']}:{sample['line']}: {sample['reason']}")
        out.write(f"  time:              {seconds:,.1f} s")
