from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from apps.audit.anchors import AnchorError, load_public_key
from apps.audit.integrity import BATCH_SIZE, chain_verify


class Command(BaseCommand):
    help = (
        "Check the audit hash chain in seq order (streamed in batches), from seq 1 or the latest "
        "retention checkpoint. Exits 1 and names the first problem, or prints the head hash. "
        "With --anchors, also checks every signed anchor against the chain: a rewritten chain "
        "is detected."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--from-seq",
            type=int,
            default=1,
            metavar="SEQ",
            help="Start at this seq, trusting the row before it (for checks after a full run).",
        )
        parser.add_argument(
            "--anchors",
            nargs="?",
            const="",
            default=None,
            metavar="DIR",
            help="Check the anchors (*.jsonl) in DIR, by default AUDIT_ANCHOR_DIR.",
        )
        parser.add_argument(
            "--public-key",
            metavar="KEY",
            help="Ed25519 public key of the anchors (PEM file or text, or base64): by default "
            "the public half of AUDIT_ANCHOR_KEY.",
        )
        parser.add_argument(
            "--batch-size", type=int, default=BATCH_SIZE, help="Rows read per query."
        )
        parser.add_argument(
            "--no-seal",
            action="store_true",
            help="Do not seal the events recorded since the last sealing first (for a read-only "
            "copy of the database): they are left out of the check and counted.",
        )

    def handle(
        self, *args, from_seq: int, anchors, public_key, batch_size: int, no_seal: bool, **options
    ):
        directory = None
        if anchors is not None:
            directory = Path(anchors or settings.AUDIT_ANCHOR_DIR)
        try:
            key = load_public_key(public_key) if public_key else None
            report = chain_verify(
                from_seq=from_seq,
                anchors_dir=directory,
                public_key=key,
                batch_size=batch_size,
                seal_first=not no_seal,
            )
        except (AnchorError, ImproperlyConfigured) as error:
            raise CommandError(str(error), returncode=2) from error
        if not report.ok:
            raise CommandError(report.problem, returncode=1)
        self.stdout.write(f"OK: {report.chain.verified} events verified, head {report.chain.head}")
        if report.unsealed:
            self.stdout.write(f"Not sealed yet (left out): {report.unsealed} events.")
        if report.purged:
            self.stdout.write(
                f"Retention: {report.purged} older events purged; the chain starts after "
                f"checkpoint seq {report.start_seq - 1}."
            )
        if directory is not None:
            self.stdout.write(
                f"Anchors: {report.anchors_checked} verified"
                + (
                    f" ({report.anchors_before_purge} before the purge: signature only)"
                    if report.anchors_before_purge
                    else ""
                )
                + "."
            )
