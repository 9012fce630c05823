"""Re-wrap every stored object's data key under one master key (default: the active one).

    python manage.py rotate_storage_key [--to KEY_ID]

Rotation: add the new key to MSSWEB_STORAGE_KEYS, make it MSSWEB_STORAGE_ACTIVE_KEY, restart,
run this command, and remove the old key only once it reports that none is left under it.
Only database rows change; files in storage are untouched. Safe to run again. Exit 1 when some
objects could not be re-wrapped (their ids are printed; keep their old key).
"""

from collections import Counter

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from apps.attachments import conf
from apps.attachments.models import StoredBlob
from apps.attachments.services import StorageKeyRotationIncomplete, storage_key_rotate


class Command(BaseCommand):
    help = "Re-wrap every stored object's data key under one master key (default: the active one)."

    def add_arguments(self, parser):
        parser.add_argument("--to", dest="to_key_id", help="target key id (default: active key)")

    def handle(self, *args, to_key_id=None, **options):
        try:
            to_key_id = to_key_id or conf.active_key_id()
            if to_key_id not in conf.storage_keys():
                raise CommandError(
                    f"Unknown storage key id {to_key_id!r}: it is not in MSSWEB_STORAGE_KEYS."
                )
            before = self._counts()
            self.stdout.write(f"Before: {self._format(before)}")
            rotated = storage_key_rotate(to_key_id=to_key_id)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        except StorageKeyRotationIncomplete as exc:
            self.stdout.write(f"After: {self._format(self._counts())}")
            ids = ", ".join(str(pk) for pk in exc.extra["failed_ids"])
            message = f"{exc.message} Failed ids (first 100): {ids}"
            raise CommandError(message, returncode=1) from exc
        self.stdout.write(f"Re-wrapped under {to_key_id!r}: {rotated}")
        self.stdout.write(f"After: {self._format(self._counts())}")

    @staticmethod
    def _counts() -> Counter:
        rows = StoredBlob.objects.values_list("key_id").annotate(n=Count("pk")).order_by("key_id")
        return Counter(dict(rows))

    @staticmethod
    def _format(counts: Counter) -> str:
        if not counts:
            return "no stored objects"
        return ", ".join(f"{key_id}: {n}" for key_id, n in sorted(counts.items()))
