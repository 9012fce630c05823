"""Errors of encrypted storage. All derive from ``ApplicationError`` through ``BlobError``."""

from apps.core.exceptions import ApplicationError


class BlobError(ApplicationError):
    """Root of the errors of encrypted storage."""


class BlobTooLarge(BlobError):
    """The source was longer than the ``max_size`` given to ``blob_store``: nothing was stored."""


class BlobTampered(BlobError):
    """A stored object failed authentication (modified, truncated, extended, reordered, swapped,
    missing, or wrapped under a key we do not hold). Its content must never be served."""


class StorageKeyUnknown(BlobTampered):
    """The object is wrapped under a master key id that is not configured (removed before
    ``rotate_storage_key`` finished?). A ``BlobTampered``, so every reader that refuses a
    tampered object refuses this one too; the message tells the operator what to fix."""


class StorageKeyRotationIncomplete(BlobError):
    """Some objects could not be re-wrapped; the others were. ``extra`` holds the counts and
    the ids that failed. Keep their old master key configured."""
