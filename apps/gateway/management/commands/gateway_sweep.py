from django.core.management.base import BaseCommand

from apps.gateway.services import inbound_sweep


class Command(BaseCommand):
    help = (
        "Enqueue again the received messages not yet filed (a lost broker message or a killed "
        "worker); for cron, beside the beat schedule."
    )

    def handle(self, *args, **options) -> None:
        count = inbound_sweep()
        self.stdout.write(f"{count} message(s) remis en file.")
