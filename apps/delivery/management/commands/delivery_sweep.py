"""``python manage.py delivery_sweep [--run]``: re-enqueue outbound mail that is due, or whose
worker's lease ran out (for cron, when Celery beat is not used). ``--run`` delivers in this
process instead of enqueueing (no broker needed)."""

from django.core.management.base import BaseCommand

from apps.delivery import services


class Command(BaseCommand):
    help = "Re-enqueue outbound deliveries that are due or whose lease expired."

    def add_arguments(self, parser):
        parser.add_argument(
            "--run", action="store_true", help="Deliver here instead of enqueueing."
        )

    def handle(self, *args, run: bool = False, **options):
        if run:
            claimed = 0
            while True:
                batch = services.deliveries_run()
                claimed += batch
                if not batch:
                    break
            self.stdout.write(f"{claimed} remise(s) traitée(s).")
        else:
            count = services.deliveries_sweep()
            self.stdout.write(f"{count} remise(s) remise(s) en file.")
