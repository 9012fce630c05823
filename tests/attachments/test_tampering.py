"""Whatever is changed in storage or in the row, reading refuses: nothing unverified is served."""

import io
from collections.abc import Callable

import pytest

from apps.attachments import crypto
from apps.attachments.models import StoredBlob
from apps.attachments.services import (
    BlobTampered,
    StorageKeyUnknown,
    blob_bytes,
    blob_open,
    blob_read_verified,
    blob_store,
)
from tests.attachments.conftest import CHUNK, KEY_B, chunk_span, random_bytes, stored_path

pytestmark = pytest.mark.django_db

SIZE = 3 * CHUNK + 1000  # four chunks, the last one short


@pytest.fixture
def data():
    return random_bytes(SIZE)


@pytest.fixture
def blob(blob_root, data):
    return blob_store(source=io.BytesIO(data))


def rewrite(root, blob: StoredBlob, change: Callable[[bytearray], bytes | bytearray]) -> None:
    path = stored_path(root, blob)
    path.write_bytes(bytes(change(bytearray(path.read_bytes()))))


def assert_refused(blob: StoredBlob, data: bytes) -> None:
    """Every reader refuses; ``blob_open`` yields only authentic chunks and never the last."""
    blob = StoredBlob.objects.get(pk=blob.pk)
    with pytest.raises(BlobTampered):
        blob_read_verified(blob)
    with pytest.raises(BlobTampered):
        blob_bytes(blob)
    yielded = []
    with pytest.raises(BlobTampered):  # noqa: PT012 - collect what came before the refusal
        for chunk in blob_open(blob):
            yielded.append(chunk)
    assert len(yielded) < crypto.chunk_count(blob.size, CHUNK)
    for index, chunk in enumerate(yielded):
        assert chunk == data[index * CHUNK : (index + 1) * CHUNK]


def flip_middle_byte(root, blob):
    def change(raw):
        raw[chunk_span(blob, 1).start + 500] ^= 0x01
        return raw

    rewrite(root, blob, change)


def flip_tag_byte(root, blob):
    def change(raw):
        raw[chunk_span(blob, 2).stop - 1] ^= 0x80
        return raw

    rewrite(root, blob, change)


def truncate_last_chunk(root, blob):
    rewrite(root, blob, lambda raw: raw[:-7])


def drop_final_chunk(root, blob):
    rewrite(root, blob, lambda raw: raw[: chunk_span(blob, 3).start])


def keep_header_only(root, blob):
    rewrite(root, blob, lambda raw: raw[: len(crypto.HEADER)])


def empty_file(root, blob):
    rewrite(root, blob, lambda raw: b"")


def append_garbage(root, blob):
    rewrite(root, blob, lambda raw: raw + b"\x00" * 16)


def append_a_copy_of_the_last_chunk(root, blob):
    rewrite(root, blob, lambda raw: raw + raw[chunk_span(blob, 3)])


def swap_two_chunks(root, blob):
    def change(raw):
        one, two = chunk_span(blob, 1), chunk_span(blob, 2)
        raw[one], raw[two] = raw[two], raw[one]
        return raw

    rewrite(root, blob, change)


def change_header(root, blob):
    rewrite(root, blob, lambda raw: b"MSSWEB-AEAD-2\0\0\0" + raw[16:])


def delete_file(root, blob):
    stored_path(root, blob).unlink()


def copy_chunk_from_another_blob(root, blob):
    other = blob_store(source=io.BytesIO(random_bytes(SIZE)))
    foreign = stored_path(root, other).read_bytes()[chunk_span(other, 1)]

    def change(raw):
        raw[chunk_span(blob, 1)] = foreign
        return raw

    rewrite(root, blob, change)


def replace_whole_file_with_another_blobs(root, blob):
    other = blob_store(source=io.BytesIO(random_bytes(SIZE)))
    stored_path(root, blob).write_bytes(stored_path(root, other).read_bytes())


@pytest.mark.parametrize(
    "tamper",
    [
        flip_middle_byte,
        flip_tag_byte,
        truncate_last_chunk,
        drop_final_chunk,
        keep_header_only,
        empty_file,
        append_garbage,
        append_a_copy_of_the_last_chunk,
        swap_two_chunks,
        change_header,
        delete_file,
        copy_chunk_from_another_blob,
        replace_whole_file_with_another_blobs,
    ],
)
def test_changed_ciphertext_is_refused(blob_root, blob, data, tamper):
    tamper(blob_root, blob)
    assert_refused(blob, data)


def test_dropping_the_final_chunk_of_an_exact_multiple_is_refused(blob_root):
    data = random_bytes(2 * CHUNK)  # two full chunks, the second is final
    blob = blob_store(source=io.BytesIO(data))
    rewrite(blob_root, blob, lambda raw: raw[: chunk_span(blob, 1).start])
    assert_refused(blob, data)


def test_an_empty_object_with_its_final_chunk_removed_is_refused(blob_root):
    blob = blob_store(source=io.BytesIO(b""))
    rewrite(blob_root, blob, lambda raw: raw[: len(crypto.HEADER)])
    assert_refused(blob, b"")


def test_wrong_master_key_is_refused(blob, data, settings):
    settings.STORAGE_KEYS = {"a": KEY_B}
    assert_refused(blob, data)


def test_missing_master_key_is_refused_and_named(blob, data, settings):
    settings.STORAGE_KEYS = {"b": KEY_B}
    settings.STORAGE_ACTIVE_KEY = "b"
    with pytest.raises(StorageKeyUnknown, match="'a'"):
        blob_read_verified(blob)
    assert_refused(blob, data)


def test_modified_wrapped_key_is_refused(blob, data):
    wrapped = bytearray(blob.wrapped_key)
    wrapped[20] ^= 0x01
    StoredBlob.objects.filter(pk=blob.pk).update(wrapped_key=bytes(wrapped))
    assert_refused(blob, data)


def test_wrapped_key_of_another_object_is_refused(blob_root, blob, data):
    other = blob_store(source=io.BytesIO(b"other"))
    StoredBlob.objects.filter(pk=blob.pk).update(wrapped_key=bytes(other.wrapped_key))
    assert_refused(blob, data)


@pytest.mark.parametrize(
    "field_change",
    [
        {"nonce_prefix": b"\x00" * 8},
        {"nonce_prefix": b"\x00" * 12},
        {"size": SIZE - 1},
        {"size": SIZE + 1},
        {"plaintext_mac": "0" * 64},
        {"chunk_size": CHUNK // 2},
    ],
    ids=lambda change: next(iter(change)),
)
def test_modified_row_is_refused(blob, data, field_change):
    StoredBlob.objects.filter(pk=blob.pk).update(**field_change)
    assert_refused(blob, data)


def test_a_wrong_mac_withholds_only_the_final_chunk(blob, data):
    """All chunks are authentic; the whole-object check fails, so the last one never comes."""
    StoredBlob.objects.filter(pk=blob.pk).update(plaintext_mac="0" * 64)
    blob.refresh_from_db()
    yielded = []
    with pytest.raises(BlobTampered, match="MAC"):  # noqa: PT012
        for chunk in blob_open(blob):
            yielded.append(chunk)
    assert b"".join(yielded) == data[: 3 * CHUNK]


def test_the_local_copy_is_checked_again_while_reading(blob):
    """Even the spool behind a verified file is authenticated chunk by chunk as it is read."""
    plaintext = blob_read_verified(blob)
    spool = plaintext._spool
    spool.seek(len(crypto.HEADER) + 2 * (CHUNK + crypto.TAG_BYTES) + 10)
    spool.write(b"\xff")
    assert len(plaintext.read(CHUNK)) == CHUNK
    assert len(plaintext.read(CHUNK)) == CHUNK
    with pytest.raises(BlobTampered):
        plaintext.read(CHUNK)
    plaintext.close()
