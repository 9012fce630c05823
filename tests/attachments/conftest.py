import base64
import os
from pathlib import Path

import pytest

from apps.attachments.crypto import DEFAULT_CHUNK_SIZE, HEADER, TAG_BYTES
from apps.attachments.models import StoredBlob

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
CHUNK = DEFAULT_CHUNK_SIZE
SEALED = DEFAULT_CHUNK_SIZE + TAG_BYTES


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def blob_root(settings, tmp_path) -> Path:
    """Master key "a" only, and a throwaway filesystem storage as the default storage."""
    root = tmp_path / "blobs"
    settings.STORAGE_KEYS = {"a": KEY_A}
    settings.STORAGE_ACTIVE_KEY = "a"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


def stored_path(root: Path, blob: StoredBlob) -> Path:
    return root / blob.name


def chunk_span(blob: StoredBlob, index: int) -> slice:
    start = len(HEADER) + index * SEALED
    return slice(start, min(start + SEALED, blob.ciphertext_size))


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def random_bytes(size: int) -> bytes:
    return os.urandom(size)
