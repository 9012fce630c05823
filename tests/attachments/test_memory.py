"""A 25 MB object is stored and read back with a few MB of memory, not 25."""

import hashlib
import os
import tracemalloc

import pytest

from apps.attachments.services import blob_read_verified, blob_store

pytestmark = pytest.mark.django_db

SIZE = 25 * 1024 * 1024
PEAK_LIMIT = 8 * 1024 * 1024


def test_store_and_read_25_mb_in_bounded_memory(blob_root, tmp_path):
    source_path = tmp_path / "scan.pdf"
    digest = hashlib.sha256()
    with source_path.open("wb") as out:
        for _ in range(SIZE // (1024 * 1024)):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            out.write(block)

    tracemalloc.start()
    try:
        with source_path.open("rb") as source:
            blob = blob_store(source=source)
        _, store_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()

        read_back = hashlib.sha256()
        with blob_read_verified(blob) as plaintext:
            while block := plaintext.read(64 * 1024):
                read_back.update(block)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert blob.size == SIZE
    assert read_back.hexdigest() == digest.hexdigest()
    assert store_peak < PEAK_LIMIT, f"store peak {store_peak / 2**20:.1f} MiB"
    assert read_peak < PEAK_LIMIT, f"read peak {read_peak / 2**20:.1f} MiB"
