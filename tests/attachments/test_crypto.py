"""The stream format on its own, without the size and MAC recorded in the database.

The services check those too, so these tests make sure each property holds in the format itself:
the final flag catches truncation, the chunk number catches reordering, the name binds chunks
and wrapped keys to their object.
"""

import io

import pytest

from apps.attachments import crypto
from apps.attachments.exceptions import BlobTampered

CHUNK = 1024
KEY = bytes(range(32))
PREFIX = b"\x01" * 8


def seal(data: bytes, *, name: str = "blobs/x", key: bytes = KEY) -> bytes:
    cipher = crypto.ChunkCipher(key, nonce_prefix=PREFIX, name=name)
    out = [crypto.HEADER]
    for index, (chunk, final) in enumerate(crypto.plaintext_chunks(io.BytesIO(data), CHUNK)):
        out.append(cipher.seal(index, chunk, final=final))
    return b"".join(out)


def open_all(stored: bytes, *, name: str = "blobs/x", key: bytes = KEY) -> bytes:
    cipher = crypto.ChunkCipher(key, nonce_prefix=PREFIX, name=name)
    chunks = crypto.sealed_chunks(io.BytesIO(stored), CHUNK)
    return b"".join(
        cipher.open(index, sealed, final=final) for index, (sealed, final) in enumerate(chunks)
    )


def sealed_chunk(stored: bytes, index: int) -> slice:
    start = len(crypto.HEADER) + index * (CHUNK + crypto.TAG_BYTES)
    return slice(start, start + CHUNK + crypto.TAG_BYTES)


DATA = bytes(range(256)) * 16  # 4096 bytes: four full chunks, the fourth final


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 4 * CHUNK])
def test_sealed_size_and_round_trip(size):
    stored = seal(DATA[:size])
    assert len(stored) == crypto.encrypted_size(size, CHUNK)
    assert open_all(stored) == DATA[:size]


def test_cutting_at_a_chunk_boundary_is_caught_by_the_final_flag():
    stored = seal(DATA)
    with pytest.raises(BlobTampered, match="final chunk 2"):
        open_all(stored[: sealed_chunk(stored, 3).start])


def test_an_extra_chunk_after_the_final_one_is_caught():
    stored = seal(DATA[: 2 * CHUNK])
    with pytest.raises(BlobTampered, match="chunk 1 fails"):
        open_all(stored + stored[sealed_chunk(stored, 1)])


def test_reordered_chunks_are_caught_by_their_number():
    stored = bytearray(seal(DATA))
    one, two = sealed_chunk(stored, 1), sealed_chunk(stored, 2)
    stored[one], stored[two] = stored[two], stored[one]
    with pytest.raises(BlobTampered, match="chunk 1"):
        open_all(bytes(stored))


def test_chunks_are_bound_to_their_object_name_even_under_the_same_key():
    with pytest.raises(BlobTampered):
        open_all(seal(DATA), name="blobs/y")


def test_a_stream_with_no_chunk_is_refused():
    with pytest.raises(BlobTampered, match="no final chunk"):
        open_all(crypto.HEADER)


def test_wrapped_key_is_bound_to_master_key_and_name():
    master, data_key = bytes(32), crypto.new_data_key()
    wrapped = crypto.wrap_key(master, data_key, name="blobs/x")
    assert len(wrapped) == 60
    assert crypto.unwrap_key(master, wrapped, name="blobs/x") == data_key
    with pytest.raises(BlobTampered):
        crypto.unwrap_key(master, wrapped, name="blobs/y")
    with pytest.raises(BlobTampered):
        crypto.unwrap_key(b"\x01" * 32, wrapped, name="blobs/x")
    with pytest.raises(BlobTampered, match="wrong length"):
        crypto.unwrap_key(master, wrapped[:-1], name="blobs/x")


def test_chunk_numbers_stop_at_the_nonce_counter_limit():
    cipher = crypto.ChunkCipher(KEY, nonce_prefix=PREFIX, name="blobs/x")
    cipher.seal(crypto.MAX_CHUNKS - 1, b"", final=True)
    with pytest.raises(crypto.BlobTooLarge):
        cipher.seal(crypto.MAX_CHUNKS, b"", final=True)
