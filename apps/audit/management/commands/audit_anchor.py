from django.core.management.base import BaseCommand

from apps.audit.anchors import anchor_private_key, chain_anchor, key_id, public_key_pem


class Command(BaseCommand):
    help = (
        "Sign the head of the audit chain with AUDIT_ANCHOR_KEY and write it to AUDIT_ANCHOR_DIR "
        "(and POST it to AUDIT_ANCHOR_URL), as the daily task does; --public-key prints the "
        "public key to give to whoever checks the anchors."
    )

    def add_arguments(self, parser):
        parser.add_argument("--public-key", action="store_true", help="Print the public key.")

    def handle(self, *args, public_key: bool, **options):
        if public_key:
            key = anchor_private_key().public_key()
            self.stdout.write(public_key_pem(key).strip())
            self.stdout.write(f"key id {key_id(key)}")
            return
        anchor = chain_anchor()
        if anchor is None:
            self.stdout.write("Nothing to anchor: the audit trail is empty.")
        else:
            self.stdout.write(f"Anchored seq {anchor['seq']}, head {anchor['row_hash']}.")
