from django.core.management.base import BaseCommand

from apps.audit.services import seal


class Command(BaseCommand):
    help = (
        "Chain the audit events recorded since the last sealing (the audit.seal beat task does "
        "it every AUDIT_SEAL_INTERVAL seconds; this is for cron or after an outage of the beat)."
    )

    def handle(self, *args, **options):
        self.stdout.write(f"Sealed {seal()} events.")
