from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.audit.retention import AuditPurgeRefused, audit_purge, trash_purge


class Command(BaseCommand):
    help = (
        "Purge audit events older than AUDIT_RETENTION_DAYS (leaving a checkpoint, so the chain "
        "still verifies) and messages in the Corbeille for longer than "
        "MAILBOX_TRASH_RETENTION_DAYS, as the daily task does."
    )

    def handle(self, *args, **options):
        try:
            checkpoint = audit_purge()
        except AuditPurgeRefused as error:
            raise CommandError(str(error), returncode=1) from error
        if checkpoint is None:
            self.stdout.write(f"Audit: nothing older than {settings.AUDIT_RETENTION_DAYS} days.")
        else:
            self.stdout.write(
                f"Audit: {checkpoint.count} events purged (seq {checkpoint.first_seq}-"
                f"{checkpoint.last_seq}), checkpoint {checkpoint.checkpoint_hash}."
            )
        self.stdout.write(f"Corbeille: {trash_purge()} messages deleted.")
