"""Encrypted storage of attachments and raw messages: store, read (verified), delete, rotate.

Every object is encrypted with its own data key before it reaches storage, in chunks, so memory
stays at a few MB whatever the size (format and reasons in ``crypto.py``). Reading refuses
anything that fails authentication with ``BlobTampered``.

Which reader to use:

- ``blob_read_verified`` for anything served to a user (downloads): it authenticates the whole
  object first, then returns a file-like object that cannot yield an unverified byte, so a
  response never starts with an object that turns out to be tampered or truncated.
- ``blob_bytes`` for small objects wanted in memory (a raw message to parse).
- ``blob_open`` for internal streaming consumers only: it refuses a bad chunk before yielding
  it, but the chunks before it were already yielded, so an HTTP response streamed from it
  could have sent the beginning of a tampered object before failing.
"""

import contextlib
import hmac
import io
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from typing import BinaryIO

from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.db import connections, models, router, transaction

from apps.attachments import conf, crypto
from apps.attachments.exceptions import (
    BlobError,
    BlobTampered,
    BlobTooLarge,
    StorageKeyRotationIncomplete,
    StorageKeyUnknown,
)
from apps.attachments.models import StoredBlob

__all__ = [
    "BlobError",
    "BlobTampered",
    "BlobTooLarge",
    "StorageKeyRotationIncomplete",
    "StorageKeyUnknown",
    "VerifiedBlobFile",
    "blob_bytes",
    "blob_delete",
    "blob_open",
    "blob_read_verified",
    "blob_store",
    "blob_write",
    "storage_key_rotate",
]

logger = logging.getLogger(__name__)

# Ciphertext spooled in memory up to this size, then in an anonymous temporary file. Only
# ciphertext is ever spooled: no decrypted byte is written to disk.
SPOOL_MEMORY_BYTES = 2 * 1024 * 1024
ROTATION_BATCH = 500


def blob_storage() -> Storage:
    """The storage holding the ciphertexts. A filesystem storage must have an explicit place:
    without one (MEDIA_ROOT unset) Django would write into the current directory, inside the
    checkout or the container image, where objects would be lost on the next deployment."""
    storage = storages[conf.blobs_storage_alias()]
    if isinstance(storage, FileSystemStorage) and not storage.base_location:
        raise ImproperlyConfigured(
            "Encrypted storage needs a location: set MEDIA_ROOT or the OPTIONS location of "
            f"STORAGES[{conf.blobs_storage_alias()!r}]."
        )
    return storage


def _new_name() -> str:
    token = uuid.uuid4().hex
    return f"blobs/{token[:2]}/{token[2:4]}/{token}"


def blob_store(*, source: BinaryIO, max_size: int | None = None) -> StoredBlob:
    """Encrypt ``source`` (read from its current position to its end) into storage.

    Raises ``BlobTooLarge`` as soon as more than ``max_size`` bytes were read, leaving nothing
    in storage or in the database. The ciphertext is written to storage before the row exists,
    and no database transaction is held during that write: a crash in between leaves a file
    without a row, which nobody can decrypt (its data key was never saved).
    """
    blob = blob_write(source=source, max_size=max_size)
    try:
        blob.save(force_insert=True)
    except BaseException:
        blob_discard(blob)
        raise
    return blob


def blob_write(
    *, source: BinaryIO, max_size: int | None = None, inline: bool = False
) -> StoredBlob:
    """The first half of ``blob_store``: the ciphertext written to storage and its row, **not
    saved**. The caller saves it (``save()`` or ``bulk_create``, typically in the transaction
    that also saves what refers to it: one commit for many objects) or, if that fails, deletes
    the file with ``blob_discard``. Until the row is committed the object cannot be decrypted by
    anyone (its wrapped data key exists only in this instance).

    With ``inline`` the ciphertext is kept in the row (``StoredBlob.inline``), not written to
    storage: it is durable when the row's transaction commits (one WAL write), with nothing to
    delete if that fails. For small objects only: it is held in memory."""
    key_id = conf.active_key_id()
    master_key = conf.storage_keys()[key_id]
    name = _new_name()
    data_key = crypto.new_data_key()
    nonce_prefix = crypto.new_nonce_prefix()
    chunk_size = crypto.DEFAULT_CHUNK_SIZE
    cipher = crypto.ChunkCipher(data_key, nonce_prefix=nonce_prefix, name=name)
    mac = cipher.plaintext_mac()
    size = 0
    storage = blob_storage()
    ciphertext = None
    with io.BytesIO() if inline else SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        spool.write(crypto.HEADER)
        for index, (chunk, final) in enumerate(crypto.plaintext_chunks(source, chunk_size)):
            size += len(chunk)
            if max_size is not None and size > max_size:
                raise BlobTooLarge(f"The object exceeds {max_size} bytes.", extra={"max": max_size})
            mac.update(chunk)
            spool.write(cipher.seal(index, chunk, final=final))
        ciphertext_size = spool.tell()
        if inline:
            ciphertext = spool.getvalue()
            saved = name
        else:
            spool.seek(0)
            saved = _storage_save(storage, name, spool)
    if saved != name:  # the name is authenticated: a renamed object could not be read back
        storage.delete(saved)
        raise BlobError("The storage renamed the object.", extra={"name": saved})
    return StoredBlob(
        name=name,
        key_id=key_id,
        wrapped_key=crypto.wrap_key(master_key, data_key, name=name),
        nonce_prefix=nonce_prefix,
        chunk_size=chunk_size,
        size=size,
        plaintext_mac=mac.hexdigest(),
        ciphertext_size=ciphertext_size,
        inline=ciphertext,
    )


def blobs_save(blobs: list[StoredBlob]) -> None:
    """Save new rows made by ``blob_write`` (``bulk_create``). On PostgreSQL the inline
    ciphertexts are sent as binary parameters of one multi-row INSERT (server-side binding):
    Django's client-side binding would write each into the SQL text as hex, twice its size, for
    the server to parse back."""
    db = router.db_for_write(StoredBlob)
    connection = connections[db]
    if connection.vendor != "postgresql" or not any(b.inline is not None for b in blobs):
        StoredBlob.objects.using(db).bulk_create(blobs)
        return
    import psycopg

    fields = [f for f in StoredBlob._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join("%b" if isinstance(f, models.BinaryField) else "%s" for f in fields)
    sql = (
        f"INSERT INTO {connection.ops.quote_name(StoredBlob._meta.db_table)} ({columns}) "  # noqa: S608 - quoted names only
        f"VALUES {', '.join([f'({marks})'] * len(blobs))} RETURNING id"
    )
    params = [f.get_db_prep_save(f.pre_save(b, True), connection) for b in blobs for f in fields]
    connection.ensure_connection()
    # A cursor of Django's: its execute wrappers and error translation apply.
    with connection.make_cursor(psycopg.Cursor(connection.connection)) as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    for blob, pk in zip(blobs, ids, strict=True):
        blob.pk = pk
        blob._state.adding = False
        blob._state.db = db


def blob_discard(blob: StoredBlob) -> None:
    """Delete the ciphertext of an object ``blob_write`` made whose row was not saved (best
    effort: without its row it cannot be decrypted anyway; an inline one has nothing to
    delete)."""
    if blob.inline is None:
        with contextlib.suppress(Exception):
            blob_storage().delete(blob.name)


# Directories of the filesystem storage known to exist (per process): blobs/xx/yy, 65,536 at most.
_directories: set[str] = set()


def _storage_save(storage: Storage, name: str, content: BinaryIO) -> str:
    """``storage.save(name, content)``, but for the filesystem storage the file is created
    directly (O_EXCL, with the storage's permissions): the generic path checks whether the name
    is free, creates the directories, locks and chmods the file again for every object, which
    costs more than encrypting a 50 KB message. The names are random: one that exists already
    is an error, never a rename. The file and its directory entry are synced to disk before
    this returns (``fdatasync``, then ``fsync`` of the directory): a row committed afterwards
    never names an object a crash of the machine could lose (the gateway answers ``250`` only
    after that commit)."""
    if type(storage) is not FileSystemStorage:
        return storage.save(name, File(content, name=name))
    path = storage.path(name)
    directory = os.path.dirname(path)
    mode = storage.file_permissions_mode if storage.file_permissions_mode is not None else 0o666
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    _directory_ensure(storage, directory)
    try:
        descriptor = os.open(path, flags, mode)
    except FileNotFoundError:  # the directory went away since (an emptied storage)
        _directories.discard(directory)
        _directory_ensure(storage, directory)
        descriptor = os.open(path, flags, mode)
    try:
        with os.fdopen(descriptor, "wb") as target:
            if storage.file_permissions_mode is not None:
                os.fchmod(target.fileno(), mode)  # the exact mode, whatever the umask
            shutil.copyfileobj(content, target, 1024 * 1024)
            target.flush()
            os.fdatasync(target.fileno())
        _directory_sync(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return name


def _directory_sync(directory: str) -> None:
    """Make the new file's name durable (its directory entry), as its data already is."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _directory_ensure(storage: FileSystemStorage, directory: str) -> None:
    """Make ``directory`` and its missing parents with the storage's directory permissions
    (exactly: chmod after mkdir, as the umask may remove bits), once per process."""
    if directory in _directories:
        return
    mode = storage.directory_permissions_mode
    missing = []
    level = directory
    while not os.path.isdir(level):
        missing.append(level)
        level = os.path.dirname(level)
    for level in reversed(missing):
        try:
            os.mkdir(level, mode if mode is not None else 0o777)
        except FileExistsError:
            continue  # made by another thread or process meanwhile
        if mode is not None:
            os.chmod(level, mode)
        _directory_sync(os.path.dirname(level))  # the new directory's own entry
    _directories.add(directory)


def _cipher(blob: StoredBlob, keys: dict[str, bytes] | None = None) -> crypto.ChunkCipher:
    return crypto.ChunkCipher(
        _data_key(blob, keys), nonce_prefix=bytes(blob.nonce_prefix), name=blob.name
    )


def _data_key(blob: StoredBlob, keys: dict[str, bytes] | None = None, *, log: bool = True) -> bytes:
    keys = conf.storage_keys() if keys is None else keys
    try:
        if blob.key_id not in keys:
            raise StorageKeyUnknown(
                f"Stored object {blob.pk} is wrapped under storage key {blob.key_id!r}, which is "
                "not configured (MSSWEB_STORAGE_KEYS).",
                extra={"key_id": blob.key_id},
            )
        return crypto.unwrap_key(keys[blob.key_id], blob.wrapped_key, name=blob.name)
    except BlobTampered as exc:
        if log:
            _refused(blob, exc)
        raise


def _refused(blob: StoredBlob, exc: BlobTampered) -> None:
    logger.error(
        "stored object refused", extra={"blob": blob.pk, "key_id": blob.key_id, "why": exc.message}
    )
    exc.extra.setdefault("blob", blob.pk)


def _open_ciphertext(blob: StoredBlob) -> BinaryIO:
    if blob.inline is not None:
        return io.BytesIO(bytes(blob.inline))
    try:
        return blob_storage().open(blob.name, "rb")
    except FileNotFoundError:
        exc = BlobTampered("The stored object is missing.")
        _refused(blob, exc)
        raise exc from None


def blob_open(blob: StoredBlob) -> Iterator[bytes]:
    """Plaintext chunks of ``blob``, each authenticated before it is yielded.

    Raises ``BlobTampered`` (before yielding the chunk concerned) if anything fails; the final
    chunk is yielded only once the whole object checked out. Chunks already yielded were
    authentic, but the consumer has seen the beginning of an object that turned out bad: do not
    stream this into an HTTP response, use ``blob_read_verified``. The master key is checked
    when this is called, the ciphertext read as the iterator is consumed.
    """
    cipher = _cipher(blob)
    return _stream_plaintext(blob, cipher)


def _stream_plaintext(blob: StoredBlob, cipher: crypto.ChunkCipher) -> Iterator[bytes]:
    with _open_ciphertext(blob) as stream:
        yield from _checked_chunks(blob, cipher, stream)


def _checked_chunks(
    blob: StoredBlob, cipher: crypto.ChunkCipher, stream: BinaryIO
) -> Iterator[bytes]:
    """Plaintext chunks, each authenticated before it is yielded; the final one only after the
    size and the plaintext MAC of the whole object were checked too."""
    mac = cipher.plaintext_mac()
    total = 0
    try:
        for index, (sealed, final) in enumerate(crypto.sealed_chunks(stream, blob.chunk_size)):
            plaintext = cipher.open(index, sealed, final=final)
            total += len(plaintext)
            if total > blob.size:
                raise BlobTampered("The stored object is longer than recorded.")
            mac.update(plaintext)
            if final:
                if total != blob.size:
                    raise BlobTampered("The stored object is shorter than recorded.")
                if not hmac.compare_digest(mac.hexdigest(), blob.plaintext_mac):
                    raise BlobTampered("The plaintext does not match its recorded MAC.")
            yield plaintext
    except BlobTampered as exc:
        _refused(blob, exc)
        raise


def blob_read_verified(blob: StoredBlob) -> "VerifiedBlobFile":
    """The plaintext of ``blob`` as a read-only, seekable file, authenticated in full first.

    The ciphertext is copied from storage into a local spool (memory up to 2 MiB, then an
    anonymous temporary file: ciphertext only) while every chunk, the size and the plaintext MAC
    are checked. Only then is the file returned; reads decrypt chunk by chunk from that local
    copy, so nothing decrypted is written to disk and memory stays at about one chunk. Raises
    ``BlobTampered`` before returning anything if the object fails any check. Close the file
    (``FileResponse`` does) to drop the spool.
    """
    cipher = _cipher(blob)
    spool = SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115 - returned open
    try:
        with _open_ciphertext(blob) as stream:
            for _chunk in _checked_chunks(blob, cipher, _Tee(stream, spool)):
                pass
        return VerifiedBlobFile(blob, cipher, spool)
    except BaseException:
        spool.close()
        raise


def blob_bytes(blob: StoredBlob) -> bytes:
    """The whole plaintext in memory, verified (for small objects: raw messages to parse)."""
    return b"".join(blob_open(blob))


def blob_delete(blob: StoredBlob) -> None:
    """Delete the row (and with it the data key), then the ciphertext once that is committed.

    Should the file deletion fail, the file left behind cannot be decrypted any more."""
    name, in_storage = blob.name, blob.inline is None
    storage = blob_storage()
    with transaction.atomic():
        blob.delete()
        if in_storage:
            transaction.on_commit(lambda: storage.delete(name), robust=True)


def storage_key_rotate(*, to_key_id: str, batch_size: int = ROTATION_BATCH) -> int:
    """Re-wrap the data key of every object not yet under ``to_key_id`` with that master key.

    Only database rows change (60 bytes each), batch by batch, each batch in its own
    transaction; the ciphertext files are untouched. Idempotent: a second run finds nothing to
    do, and an interrupted run can simply be started again. Returns the number re-wrapped.
    If some objects cannot be unwrapped (their master key is not configured or they were
    tampered with), the others are still re-wrapped, then ``StorageKeyRotationIncomplete`` is
    raised with their ids: do not remove their old master key.
    """
    keys = conf.storage_keys()
    if to_key_id not in keys:
        raise ImproperlyConfigured(
            f"Storage key {to_key_id!r} is not configured (MSSWEB_STORAGE_KEYS)."
        )
    target = keys[to_key_id]
    rotated = 0
    failed: list[int] = []
    last_pk = 0
    while True:
        batch = list(
            StoredBlob.objects.filter(pk__gt=last_pk)
            .exclude(key_id=to_key_id)
            .order_by("pk")
            .only("pk", "name", "key_id", "wrapped_key")[:batch_size]
        )
        if not batch:
            break
        last_pk = batch[-1].pk
        changed = []
        for blob in batch:
            try:
                data_key = _data_key(blob, keys, log=False)  # one summary below, not one per row
            except BlobTampered:
                failed.append(blob.pk)
                continue
            blob.wrapped_key = crypto.wrap_key(target, data_key, name=blob.name)
            blob.key_id = to_key_id
            changed.append(blob)
        with transaction.atomic():
            StoredBlob.objects.bulk_update(changed, ["key_id", "wrapped_key"])
        rotated += len(changed)
    logger.info(
        "storage key rotation",
        extra={"to": to_key_id, "rotated": rotated, "failed": len(failed)},
    )
    if failed:
        raise StorageKeyRotationIncomplete(
            f"{len(failed)} stored objects could not be re-wrapped; {rotated} were. Keep their "
            "master keys configured.",
            extra={"rotated": rotated, "failed_ids": failed[:100], "failed": len(failed)},
        )
    return rotated


class _Tee(io.RawIOBase):
    """Reads from ``source`` and copies what it read into ``copy``."""

    def __init__(self, source: BinaryIO, copy: BinaryIO) -> None:
        self._source = source
        self._copy = copy

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._copy.write(data)
        return data


@dataclass
class _Chunk:
    index: int
    plaintext: bytes


class VerifiedBlobFile(io.RawIOBase):
    """Plaintext of an object already authenticated in full: read-only, seekable, one chunk
    decrypted at a time from a local copy of the ciphertext (each chunk is authenticated again
    as it is decrypted, so even that local copy cannot be altered undetected)."""

    def __init__(self, blob: StoredBlob, cipher: crypto.ChunkCipher, spool: BinaryIO) -> None:
        super().__init__()
        self.size = blob.size
        self._blob_pk = blob.pk
        self._chunk_size = blob.chunk_size
        self._chunks = crypto.chunk_count(blob.size, blob.chunk_size)
        self._cipher = cipher
        self._spool = spool
        self._position = 0
        self._current: _Chunk | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def readinto(self, buffer) -> int:
        """Fills ``buffer`` across chunk boundaries; short only at the end of the object."""
        self._checkClosed()
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target) and self._position < self.size:
            index, offset = divmod(self._position, self._chunk_size)
            plaintext = self._chunk(index)
            count = min(len(target) - filled, len(plaintext) - offset)
            target[filled : filled + count] = memoryview(plaintext)[offset : offset + count]
            filled += count
            self._position += count
        return filled

    def _chunk(self, index: int) -> bytes:
        if self._current is None or self._current.index != index:
            sealed_size = self._chunk_size + crypto.TAG_BYTES
            final = index == self._chunks - 1
            self._spool.seek(len(crypto.HEADER) + index * sealed_size)
            if final:
                sealed_size = self.size - index * self._chunk_size + crypto.TAG_BYTES
            sealed = crypto.read_exact(self._spool, sealed_size)
            self._current = _Chunk(index, self._cipher.open(index, sealed, final=final))
        return self._current.plaintext

    def close(self) -> None:
        if not self.closed:
            self._spool.close()
            self._current = None
        super().close()
