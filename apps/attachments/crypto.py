"""The at-rest format of stored objects: AES-256-GCM envelope encryption, streamed in chunks.

Pure functions and small classes, no Django: ``services.py`` does the storage and the database.

Envelope
    Each object gets a random 256-bit data key. The data key is stored in the database wrapped
    (AES-256-GCM) under a master key taken from the environment, whose id is stored beside it,
    so master keys can rotate by re-wrapping 60-byte values instead of re-encrypting files:
    ``wrapped = nonce (12) || AES-GCM(master, nonce, data key, AAD = b"mssweb-dek|" + name)``.

Stream (the bytes in storage)
    ``HEADER`` (16 bytes), then chunks. Chunk ``i`` is
    ``AES-GCM(data key, nonce = nonce_prefix (8) || i (4, big-endian), plaintext[i],
    AAD = name || i (8, big-endian) || final (1 byte))`` = ciphertext || 16-byte tag.
    Every chunk holds ``chunk_size`` plaintext bytes except the last, which may be shorter and
    is empty only for an empty object: there is always exactly one final chunk. This is the
    STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015, as in Tink and age): a
    modified byte, a dropped or truncated final chunk, appended bytes, reordered chunks, or a
    chunk taken from another object all fail authentication, and a reader can refuse a bad
    chunk before releasing it, holding one chunk in memory.

Why AEAD and not OpenPGP: see the README ("Encryption at rest"). In short, OpenPGP's
symmetric encryption is CFB mode, which is malleable and whose integrity check (MDC, a SHA-1
over the whole plaintext) can only be checked after the whole object was decrypted; gpg then
has already written the unverified plaintext out. The measured cost is also 30 times higher.
"""

import hashlib
import hmac
import os
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from apps.attachments.exceptions import BlobTampered, BlobTooLarge

HEADER = b"MSSWEB-AEAD-1\0\0\0"
TAG_BYTES = 16
KEY_BYTES = 32
WRAP_NONCE_BYTES = 12
NONCE_PREFIX_BYTES = 8
DEFAULT_CHUNK_SIZE = 64 * 1024
MAX_CHUNKS = 2**32  # the chunk counter takes 4 bytes of the nonce
DEK_AAD_PREFIX = b"mssweb-dek|"
MAC_KEY_LABEL = b"mssweb-plaintext-mac"

assert len(HEADER) == 16


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def new_nonce_prefix() -> bytes:
    return os.urandom(NONCE_PREFIX_BYTES)


def wrap_key(master_key: bytes, data_key: bytes, *, name: str) -> bytes:
    """The data key encrypted under the master key, bound to the object's name (60 bytes)."""
    nonce = os.urandom(WRAP_NONCE_BYTES)
    return nonce + AESGCM(master_key).encrypt(nonce, data_key, DEK_AAD_PREFIX + name.encode())


def unwrap_key(master_key: bytes, wrapped: bytes, *, name: str) -> bytes:
    """The data key, or ``BlobTampered`` if ``wrapped`` was not made by ``wrap_key`` with this
    master key for this name."""
    wrapped = bytes(wrapped)
    if len(wrapped) != WRAP_NONCE_BYTES + KEY_BYTES + TAG_BYTES:
        raise BlobTampered("The wrapped data key has the wrong length.")
    nonce, sealed = wrapped[:WRAP_NONCE_BYTES], wrapped[WRAP_NONCE_BYTES:]
    try:
        return AESGCM(master_key).decrypt(nonce, sealed, DEK_AAD_PREFIX + name.encode())
    except InvalidTag:
        raise BlobTampered("The data key does not unwrap under its master key.") from None


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks of an object of ``size`` plaintext bytes (at least one: the final chunk)."""
    return max(1, -(-size // chunk_size))


def encrypted_size(size: int, chunk_size: int) -> int:
    """Bytes in storage for ``size`` plaintext bytes."""
    return len(HEADER) + size + chunk_count(size, chunk_size) * TAG_BYTES


class ChunkCipher:
    """Seals and opens the chunks of one object (one data key, one nonce prefix, one name)."""

    def __init__(self, data_key: bytes, *, nonce_prefix: bytes, name: str) -> None:
        if len(nonce_prefix) != NONCE_PREFIX_BYTES:
            raise BlobTampered("The nonce prefix has the wrong length.")
        self._aead = AESGCM(data_key)
        self._mac_key = hmac.new(data_key, MAC_KEY_LABEL, hashlib.sha256).digest()
        self._prefix = bytes(nonce_prefix)
        self._name = name.encode()

    def plaintext_mac(self) -> "hmac.HMAC":
        """A running HMAC-SHA256 of the plaintext under a key derived from the data key.

        It checks the whole plaintext end to end without a plain SHA-256 in the database, which
        would let anyone holding a copy of the database confirm a guessed document or see that
        two objects are the same."""
        return hmac.new(self._mac_key, digestmod=hashlib.sha256)

    def _nonce_aad(self, index: int, final: bool) -> tuple[bytes, bytes]:
        if not 0 <= index < MAX_CHUNKS:
            raise BlobTooLarge("Too many chunks for one object.")
        nonce = self._prefix + index.to_bytes(4, "big")
        aad = self._name + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")
        return nonce, aad

    def seal(self, index: int, plaintext: bytes, *, final: bool) -> bytes:
        nonce, aad = self._nonce_aad(index, final)
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, index: int, sealed: bytes, *, final: bool) -> bytes:
        nonce, aad = self._nonce_aad(index, final)
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            where = "final chunk" if final else "chunk"
            raise BlobTampered(f"The {where} {index} fails authentication.") from None


def read_exact(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes, or fewer only at the end of the stream (sockets and pipes return short
    reads; chunk boundaries must not depend on them)."""
    data = stream.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    missing = size - len(data)
    while missing:
        more = stream.read(missing)
        if not more:
            break
        parts.append(more)
        missing -= len(more)
    return b"".join(parts)


def plaintext_chunks(source: BinaryIO, chunk_size: int) -> Iterator[tuple[bytes, bool]]:
    """``(chunk, is_final)`` pairs: full chunks, then a last (possibly empty) one marked final.
    Reads one chunk ahead to know which one is last."""
    current = read_exact(source, chunk_size)
    while True:
        following = read_exact(source, chunk_size) if len(current) == chunk_size else b""
        if not following:
            yield current, True
            return
        yield current, False
        current = following


def sealed_chunks(stream: BinaryIO, chunk_size: int) -> Iterator[tuple[bytes, bool]]:
    """After checking the header: ``(sealed chunk, is_final)`` pairs as stored, the final one
    being the one the stream ends with. A stream with no chunk at all is refused."""
    if read_exact(stream, len(HEADER)) != HEADER:
        raise BlobTampered("The stored object does not start with the expected header.")
    sealed_size = chunk_size + TAG_BYTES
    current = read_exact(stream, sealed_size)
    if not current:
        raise BlobTampered("The stored object has no final chunk (truncated).")
    while True:
        following = read_exact(stream, sealed_size) if len(current) == sealed_size else b""
        if not following:
            yield current, True
            return
        yield current, False
        current = following
