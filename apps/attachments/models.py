"""Encrypted objects in storage: one row per stored attachment or raw message source.

The row holds what is needed to read the ciphertext file named ``name``: the data key wrapped
under the master key ``key_id``, the nonce prefix and chunk size of the stream (see
``crypto.py``). Deleting the row destroys the only copy of the data key, so the ciphertext (and
every backup of it) becomes unreadable even if the file itself survives.
"""

from django.db import models
from django.utils import timezone


class StoredBlob(models.Model):
    name = models.CharField(max_length=255, unique=True, help_text="path in storage, random")
    key_id = models.CharField(max_length=32, help_text="master key that wraps the data key")
    wrapped_key = models.BinaryField(help_text="nonce + AES-256-GCM(master key, data key)")
    nonce_prefix = models.BinaryField(help_text="8 random bytes, the start of every chunk nonce")
    chunk_size = models.PositiveIntegerField(help_text="plaintext bytes per chunk")
    size = models.PositiveBigIntegerField(help_text="plaintext bytes")
    plaintext_mac = models.CharField(
        max_length=64, help_text="HMAC-SHA256 of the plaintext, keyed from the data key"
    )
    ciphertext_size = models.PositiveBigIntegerField(help_text="bytes in storage")
    # The ciphertext kept in the row instead of a file in storage: for objects that must be
    # durable once their transaction commits, at the cost of one WAL write rather than a file
    # and two fsyncs each (the raws the SMTP gateway accepts, committed together before 250).
    inline = models.BinaryField(
        null=True, blank=True, editable=False, help_text="ciphertext, when kept in the row"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(chunk_size__gte=1024), name="attachments_blob_chunk_size_min"
            ),
        ]

    def __str__(self) -> str:
        return f"blob {self.pk} ({self.size} bytes, key {self.key_id})"
