"""Round trips, streaming shape, size limit and deletion of encrypted objects."""

import hashlib
import io

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.http import FileResponse

from apps.attachments import crypto
from apps.attachments.models import StoredBlob
from apps.attachments.services import (
    BlobTampered,
    BlobTooLarge,
    blob_bytes,
    blob_delete,
    blob_open,
    blob_read_verified,
    blob_store,
    blob_write,
)
from tests.attachments.conftest import CHUNK, files_under, random_bytes, stored_path

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3_000_000], ids=lambda s: f"{s}B"
)
def test_round_trip_gives_back_the_exact_bytes(blob_root, size):
    data = random_bytes(size)
    blob = blob_store(source=io.BytesIO(data))
    blob.refresh_from_db()

    assert blob.size == size
    assert blob.key_id == "a"
    assert blob.ciphertext_size == crypto.encrypted_size(size, CHUNK)
    assert default_storage.size(blob.name) == blob.ciphertext_size
    assert blob_bytes(blob) == data
    assert b"".join(blob_open(blob)) == data
    with blob_read_verified(blob) as plaintext:
        assert plaintext.read() == data


def test_stored_bytes_are_not_the_plaintext(blob_root):
    data = b"Compte rendu operatoire, patient X. " * 5000
    blob = blob_store(source=io.BytesIO(data))
    stored = stored_path(blob_root, blob).read_bytes()
    assert stored.startswith(crypto.HEADER)
    assert data[:32] not in stored
    assert b"patient" not in stored


def test_every_object_gets_its_own_data_key_and_name(blob_root):
    data = b"same content"
    first, second = (blob_store(source=io.BytesIO(data)) for _ in range(2))
    assert first.name != second.name
    assert first.name.startswith("blobs/")
    assert bytes(first.wrapped_key) != bytes(second.wrapped_key)
    # No plain digest in the database: equal contents do not show as equal.
    assert first.plaintext_mac != second.plaintext_mac
    assert hashlib.sha256(data).hexdigest() not in (first.plaintext_mac, second.plaintext_mac)
    path_1, path_2 = stored_path(blob_root, first), stored_path(blob_root, second)
    assert path_1.read_bytes() != path_2.read_bytes()


class TrickleReader(io.RawIOBase):
    """A source that returns at most 1000 bytes per read, like a socket or a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 1000) if size >= 0 else 1000)


def test_short_reads_from_the_source_do_not_change_the_chunking(blob_root):
    data = random_bytes(2 * CHUNK + 10)
    blob = blob_store(source=TrickleReader(data))
    assert blob.ciphertext_size == crypto.encrypted_size(len(data), CHUNK)
    assert blob_bytes(blob) == data


def test_store_reads_from_the_current_position(blob_root):
    source = io.BytesIO(b"headerBODY")
    source.seek(6)
    assert blob_bytes(blob_store(source=source)) == b"BODY"


def test_verified_file_seeks_and_serves_a_content_length(blob_root):
    data = random_bytes(3 * CHUNK + 123)
    blob = blob_store(source=io.BytesIO(data))

    plaintext = blob_read_verified(blob)
    assert plaintext.seekable()
    plaintext.seek(CHUNK - 5)
    assert plaintext.read(10) == data[CHUNK - 5 : CHUNK + 5]  # across a chunk boundary
    plaintext.seek(-3, io.SEEK_END)
    assert plaintext.read() == data[-3:]
    assert plaintext.read(10) == b""
    plaintext.seek(0)

    response = FileResponse(plaintext, as_attachment=True, filename="cr.pdf")
    assert response["Content-Length"] == str(len(data))
    assert b"".join(response.streaming_content) == data
    response.close()
    assert plaintext.closed


def test_an_object_over_max_size_is_refused_and_leaves_nothing(blob_root):
    with pytest.raises(BlobTooLarge):
        blob_store(source=io.BytesIO(random_bytes(3 * CHUNK + 1)), max_size=3 * CHUNK)
    assert not StoredBlob.objects.exists()
    assert files_under(blob_root) == []


def test_an_object_of_exactly_max_size_is_stored(blob_root):
    data = random_bytes(CHUNK)
    assert blob_bytes(blob_store(source=io.BytesIO(data), max_size=CHUNK)) == data


def test_max_size_stops_reading_a_long_source_early(blob_root):
    class Endless(io.RawIOBase):
        read_bytes = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.read_bytes += size
            return b"x" * size

    source = Endless()
    with pytest.raises(BlobTooLarge):
        blob_store(source=source, max_size=10 * CHUNK)
    assert source.read_bytes <= 12 * CHUNK


def test_delete_removes_the_row_then_the_file(blob_root, django_capture_on_commit_callbacks):
    blob = blob_store(source=io.BytesIO(b"to delete"))
    path = stored_path(blob_root, blob)
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        blob_delete(blob)
    assert not StoredBlob.objects.exists()
    assert not path.exists()


def test_a_filesystem_storage_without_location_is_refused(blob_root, settings):
    """Not the current directory, i.e. the checkout or the container image."""
    settings.MEDIA_ROOT = ""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    with pytest.raises(ImproperlyConfigured, match="MEDIA_ROOT"):
        blob_store(source=io.BytesIO(b"x"))
    assert not StoredBlob.objects.exists()


def test_files_keep_the_storage_permissions_whether_their_directory_is_new_or_known(
    blob_root, settings, monkeypatch
):
    """Objects are written directly (not through FileSystemStorage.save), their directories
    made once with the storage's exact permissions, and made again when the storage was
    emptied meanwhile."""
    import shutil
    import stat
    import uuid

    from apps.attachments import services as attachment_services

    settings.STORAGES["default"]["OPTIONS"] |= {
        "file_permissions_mode": 0o600,
        "directory_permissions_mode": 0o700,
    }
    monkeypatch.setattr(attachment_services, "_new_name", lambda: f"blobs/aa/bb/{uuid.uuid4().hex}")
    first, second = (blob_store(source=io.BytesIO(b"x" * 100)) for _ in range(2))
    assert str(blob_root / "blobs" / "aa" / "bb") in attachment_services._directories
    for blob in (first, second):
        assert stat.S_IMODE(stored_path(blob_root, blob).stat().st_mode) == 0o600
        assert blob_bytes(blob) == b"x" * 100
    assert stat.S_IMODE((blob_root / "blobs" / "aa").stat().st_mode) == 0o700

    shutil.rmtree(blob_root)
    again = blob_store(source=io.BytesIO(b"y" * 10))
    assert blob_bytes(again) == b"y" * 10


def test_a_file_and_its_new_directories_are_synced_to_disk_before_the_row_exists(
    blob_root, monkeypatch
):
    """What a commit names after ``blob_write`` survives a crash of the machine: the file's data
    (``fdatasync``) and its directory entry, and those of directories made for it (``fsync``)."""
    import os

    synced: list[str] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync
    monkeypatch.setattr(os, "fdatasync", lambda fd: synced.append("data") or real_fdatasync(fd))
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append("entry") or real_fsync(fd))
    blob = blob_write(source=io.BytesIO(b"compte rendu"))
    assert not StoredBlob.objects.exists()
    assert stored_path(blob_root, blob).read_bytes()  # written, not yet saved
    # The storage's directories made (blobs/xx/yy at least: one entry each), then the file's
    # data and its own entry.
    assert synced[-2:] == ["data", "entry"]
    assert len(synced) >= 5
    assert set(synced[:-2]) == {"entry"}
    synced.clear()
    blob_write(source=io.BytesIO(b"autre"))
    assert synced[-2:] == ["data", "entry"]


def test_an_inline_object_lives_in_its_row_only(blob_root, django_capture_on_commit_callbacks):
    data = random_bytes(3 * CHUNK + 5)
    blob = blob_write(source=io.BytesIO(data), inline=True)
    blob.save()
    assert files_under(blob_root) == []
    stored = StoredBlob.objects.get(pk=blob.pk)
    assert len(stored.inline) == stored.ciphertext_size
    assert data not in bytes(stored.inline)
    assert blob_bytes(stored) == data
    with blob_read_verified(stored) as verified:
        assert verified.read() == data
    with django_capture_on_commit_callbacks(execute=True):
        blob_delete(stored)
    assert not StoredBlob.objects.exists()


def test_a_changed_inline_ciphertext_is_refused(blob_root):
    blob = blob_write(source=io.BytesIO(b"x" * 5000), inline=True)
    blob.save()
    tampered = bytearray(blob.inline)
    tampered[-20] ^= 1
    StoredBlob.objects.filter(pk=blob.pk).update(inline=bytes(tampered))
    with pytest.raises(BlobTampered):
        blob_bytes(StoredBlob.objects.get(pk=blob.pk))
