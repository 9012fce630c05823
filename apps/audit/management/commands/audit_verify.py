from django.core.management.base import BaseCommand, CommandError

from apps.audit.chain import GENESIS_HASH, HASHED_FIELDS, verify_rows
from apps.audit.models import AuditEvent

COLUMNS = ("id", "prev_hash", "row_hash", *HASHED_FIELDS)


class Command(BaseCommand):
    help = (
        "Check the audit hash chain in seq order. Exits 1 and names the first broken row, or "
        "prints the head hash: keep it elsewhere to detect a rewritten chain later."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--from-seq",
            type=int,
            default=1,
            metavar="SEQ",
            help="Start at this seq, trusting the row before it (for checks after a full run).",
        )

    def handle(self, *args, from_seq: int, **options):
        previous = (
            AuditEvent.objects.filter(seq__lt=from_seq)
            .order_by("-seq")
            .values_list("seq", "row_hash")
            .first()
        )
        prev_hash, next_seq = (previous[1], previous[0] + 1) if previous else (GENESIS_HASH, 1)
        rows = (
            AuditEvent.objects.filter(seq__gte=from_seq)
            .order_by("seq")
            .values_list(*COLUMNS)
            .iterator(chunk_size=2000)
        )
        try:
            report = verify_rows(
                (dict(zip(COLUMNS, row, strict=True)) for row in rows),
                prev_hash=prev_hash,
                next_seq=next_seq,
            )
        finally:
            rows.close()  # stopping at a broken row: close the server-side cursor now
        if report.broken is not None:
            broken = report.broken
            raise CommandError(
                f"audit chain broken at seq {broken.seq} (id {broken.id}): {broken.reason} "
                f"({report.verified} events verified before it)",
                returncode=1,
            )
        self.stdout.write(f"OK: {report.verified} events verified, head {report.head}")
