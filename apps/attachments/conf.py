"""Settings of encrypted storage, read from ``django.conf.settings`` when used, never at import.

``mssweb/settings.py`` builds them from the environment with ``parse_storage_keys``:

- ``STORAGE_KEYS``: master keys, ``{key_id: 32 bytes}`` (``MSSWEB_STORAGE_KEYS``);
- ``STORAGE_ACTIVE_KEY``: the key id that wraps the data keys of new objects
  (``MSSWEB_STORAGE_ACTIVE_KEY``; may be left empty when exactly one key is configured);
- ``STORAGE_BLOBS_ALIAS``: the ``STORAGES`` alias holding the ciphertexts (default "default").

With ``DEBUG`` or ``TESTING`` and no key configured, a development key (id "dev") is generated
once into ``VAR_DIR/dev-storage-key`` (mode 600). In production, no key means
``ImproperlyConfigured`` at first use: there is no fallback.

This module imports nothing of the project, so settings.py may import ``parse_storage_keys``.
"""

import base64
import binascii
import contextlib
import functools
import os
import re
import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

KEY_BYTES = 32
KEY_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
DEV_KEY_ID = "dev"
DEV_KEY_FILE = "dev-storage-key"


def parse_storage_keys(text: str) -> dict[str, bytes]:
    """Parse ``"kid1:<base64 of 32 bytes>,kid2:<base64>"`` into ``{"kid1": b"...", ...}``.

    Spaces and newlines around items are ignored; an empty text gives ``{}``. Standard or
    URL-safe base64, padded. Errors raise ``ImproperlyConfigured`` naming the item by position
    and key id, never quoting key material.
    """
    keys: dict[str, bytes] = {}
    for position, raw_item in enumerate(text.replace("\n", ",").split(","), start=1):
        item = raw_item.strip()
        if not item:
            continue
        key_id, sep, encoded = (part.strip() for part in item.partition(":"))
        where = f"MSSWEB_STORAGE_KEYS item {position}"
        if not sep or not encoded:
            raise ImproperlyConfigured(f"{where}: expected KEY_ID:BASE64_KEY.")
        if not KEY_ID_RE.fullmatch(key_id):
            raise ImproperlyConfigured(
                f"{where}: a key id is 1 to 32 characters among letters, digits, '_', '.', '-'."
            )
        if key_id in keys:
            raise ImproperlyConfigured(f"{where}: key id {key_id!r} appears twice.")
        try:
            key = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(f"{where} ({key_id!r}): not valid base64.") from None
        if len(key) != KEY_BYTES:
            raise ImproperlyConfigured(
                f"{where} ({key_id!r}): the key must be {KEY_BYTES} random bytes, not {len(key)}. "
                'Generate one with: python -c "import base64, secrets; '
                'print(base64.b64encode(secrets.token_bytes(32)).decode())"'
            )
        keys[key_id] = key
    return keys


def storage_keys() -> dict[str, bytes]:
    """The configured master keys; the development key in debug/test when none is configured."""
    keys = getattr(settings, "STORAGE_KEYS", None) or {}
    if keys:
        for key_id, key in keys.items():
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ImproperlyConfigured(f"STORAGE_KEYS[{key_id!r}] is not {KEY_BYTES} bytes.")
        return dict(keys)
    if getattr(settings, "DEBUG", False) or getattr(settings, "TESTING", False):
        return {DEV_KEY_ID: _dev_key(Path(settings.VAR_DIR) / DEV_KEY_FILE)}
    raise ImproperlyConfigured(
        "Encrypted storage needs MSSWEB_STORAGE_KEYS (and MSSWEB_STORAGE_ACTIVE_KEY) in "
        "production; see .env.example."
    )


def active_key_id() -> str:
    """The key id that wraps new objects' data keys; it must be among ``storage_keys()``."""
    keys = storage_keys()
    active = getattr(settings, "STORAGE_ACTIVE_KEY", "") or ""
    if not active:
        if len(keys) == 1:
            return next(iter(keys))
        raise ImproperlyConfigured(
            "Several storage keys are configured: set MSSWEB_STORAGE_ACTIVE_KEY to the one that "
            "wraps new objects."
        )
    if active not in keys:
        raise ImproperlyConfigured(
            f"MSSWEB_STORAGE_ACTIVE_KEY={active!r} is not among MSSWEB_STORAGE_KEYS."
        )
    return active


def blobs_storage_alias() -> str:
    """The ``STORAGES`` alias that holds the ciphertexts."""
    return getattr(settings, "STORAGE_BLOBS_ALIAS", "") or "default"


def _dev_key(path: Path) -> bytes:
    """A per-checkout random key for local use, created once (atomically, mode 600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
            with contextlib.suppress(FileExistsError):  # another process was first: keep its key
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    stat = path.stat()  # the file is read again only when it was replaced
    return _read_key(str(path), stat.st_ino, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_key(path: str, _inode: int, _mtime_ns: int) -> bytes:
    """The key in ``path``: read once per version of the file, not for every stored object."""
    key = base64.b64decode(Path(path).read_text().strip(), validate=True)
    if len(key) != KEY_BYTES:
        raise ImproperlyConfigured(f"{path} does not hold a {KEY_BYTES}-byte key; delete it.")
    return key
