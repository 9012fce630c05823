"""Anchoring: the chain head, signed with the operator's Ed25519 key, written outside the database.

The hash chain shows an edited or deleted row, but someone able to rewrite *every* row from some
point to the head (and recompute the hashes) leaves a valid chain. An anchor is a statement
``{"seq", "row_hash", "created_at", "anchored_at", "key_id"}`` about the head at a moment, signed
with the operator key and kept where the database's users cannot reach: one JSON line appended to
``AUDIT_ANCHOR_DIR/YYYY-MM-DD.jsonl`` (append-only, one file per day) and, when set, POSTed as
JSON to ``AUDIT_ANCHOR_URL`` (a timestamping or log service). ``manage.py audit_verify --anchors``
then checks each anchor's signature and that the row at its seq still carries its hash: a rewrite
of the chain before the newest anchor is detected.

Key: ``AUDIT_ANCHOR_KEY`` is a PEM private key (the text, or the path of a file), or the base64 of
the raw 32-byte Ed25519 seed; required in production. With ``DEBUG``/``TESTING`` and none set, a
key is generated once into ``VAR_DIR/dev-audit-anchor-key`` (mode 600), like the development
storage key. ``manage.py audit_anchor --public-key`` prints the public key to give verifiers.
"""

import base64
import contextlib
import hashlib
import json
import logging
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from apps.audit.chain import canonical_json, timestamp
from apps.audit.events import Event
from apps.audit.models import AuditLink
from apps.audit.services import record, seal

logger = logging.getLogger(__name__)

DEV_KEY_FILE = "dev-audit-anchor-key"
ANCHOR_VERSION = 1
SIGNED_FIELDS = ("v", "seq", "row_hash", "created_at", "anchored_at", "key_id")


class AnchorError(Exception):
    """An anchor file or key that cannot be read."""


# --- Keys -----------------------------------------------------------------------------------


def anchor_private_key() -> Ed25519PrivateKey:
    value = settings.AUDIT_ANCHOR_KEY.strip()
    if not value:
        if not (getattr(settings, "DEBUG", False) or getattr(settings, "TESTING", False)):
            raise ImproperlyConfigured("AUDIT_ANCHOR_KEY is required in production.")
        value = _dev_key(Path(settings.VAR_DIR) / DEV_KEY_FILE)
    return load_private_key(value)


def load_private_key(value: str) -> Ed25519PrivateKey:
    """A PEM text, the path of a PEM file, or the base64 of the 32-byte seed."""
    data = _key_material(value)
    if b"-----BEGIN" in data:
        key = serialization.load_pem_private_key(data, password=None)
    else:
        key = Ed25519PrivateKey.from_private_bytes(_b64(data, 32))
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured("AUDIT_ANCHOR_KEY must be an Ed25519 private key.")
    return key


def load_public_key(value: str) -> Ed25519PublicKey:
    """A PEM public key (text or file), the base64 of the raw 32 bytes, or a private key (its
    public half)."""
    data = _key_material(value)
    if b"PRIVATE KEY" in data:
        return load_private_key(value).public_key()
    if b"-----BEGIN" in data:
        key = serialization.load_pem_public_key(data)
    else:
        key = Ed25519PublicKey.from_public_bytes(_b64(data, 32))
    if not isinstance(key, Ed25519PublicKey):
        raise AnchorError("Not an Ed25519 public key.")
    return key


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw public key: names the key in anchors."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _key_material(value: str) -> bytes:
    value = value.strip()
    if value.startswith("-----BEGIN"):
        return value.encode()
    if "/" in value or value.endswith(".pem"):
        path = Path(value)
        if path.is_file():
            return path.read_bytes()
        if not value.endswith("="):  # base64 may hold "/", a path does not end with "="
            raise ImproperlyConfigured(f"Anchor key file not found: {value}")
    return value.encode()


def _b64(data: bytes, size: int) -> bytes:
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise ImproperlyConfigured(
            "An Ed25519 key is a PEM text or file, or the base64 of its 32 raw bytes."
        )
    return raw


def _dev_key(path: Path) -> str:
    """A per-checkout key for local use, created once (atomically, mode 600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)  # the first process to get there wins
        temporary.unlink()
    return path.read_text()


# --- Statements -------------------------------------------------------------------------------


def anchor_sign(
    *, seq: int, row_hash: str, created_at: datetime, anchored_at: datetime, key: Ed25519PrivateKey
) -> dict[str, Any]:
    statement = {
        "v": ANCHOR_VERSION,
        "seq": seq,
        "row_hash": row_hash,
        "created_at": timestamp(created_at),
        "anchored_at": timestamp(anchored_at),
        "key_id": key_id(key.public_key()),
    }
    signature = key.sign(canonical_json(statement).encode("utf-8"))
    return {**statement, "signature": base64.b64encode(signature).decode()}


def anchor_signature_valid(anchor: dict[str, Any], public_key: Ed25519PublicKey) -> bool:
    try:
        statement = {name: anchor[name] for name in SIGNED_FIELDS}
        signature = base64.b64decode(anchor["signature"], validate=True)
        public_key.verify(signature, canonical_json(statement).encode("utf-8"))
    except (KeyError, TypeError, ValueError, InvalidSignature):
        return False
    return True


# --- Sinks ------------------------------------------------------------------------------------


def anchor_file_write(*, directory: Path, anchor: dict[str, Any]) -> Path:
    """Append ``anchor`` as one JSON line to the day's file (created mode 640)."""
    directory.mkdir(parents=True, exist_ok=True)
    day = datetime.fromisoformat(anchor["anchored_at"]).astimezone(UTC).date()
    path = directory / f"{day.isoformat()}.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(canonical_json(anchor) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def anchor_post(*, url: str, anchor: dict[str, Any], timeout: float) -> None:
    if not url.startswith(("https://", "http://")):
        raise ImproperlyConfigured("AUDIT_ANCHOR_URL must be an http(s) URL.")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=canonical_json(anchor).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "mssweb-audit-anchor"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read(1024)


@dataclass(frozen=True, slots=True)
class StoredAnchor:
    where: str  # "file:line"
    anchor: dict[str, Any] | None  # None: not a JSON object


def anchors_read(directory: Path) -> Iterator[StoredAnchor]:
    """Every anchor line of ``*.jsonl`` files under ``directory``, in file name (day) order."""
    if not directory.is_dir():
        raise AnchorError(f"Anchor directory not found: {directory}")
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    anchor = json.loads(line)
                except ValueError:
                    anchor = None
                yield StoredAnchor(
                    f"{path.name}:{number}", anchor if isinstance(anchor, dict) else None
                )


# --- The daily anchoring ------------------------------------------------------------------


def chain_anchor(*, now: datetime | None = None) -> dict[str, Any] | None:
    """Sign the current head and write it to the configured sinks, then record AUDIT_ANCHORED
    (which comes after the head it anchors). None when the trail is empty."""
    seal()
    head = (
        AuditLink.objects.order_by("-seq")
        .values_list("seq", "row_hash", "event__created_at")
        .first()
    )
    if head is None:
        return None
    seq, row_hash, created_at = head
    anchor = anchor_sign(
        seq=seq,
        row_hash=row_hash,
        created_at=created_at,
        anchored_at=now or timezone.now(),
        key=anchor_private_key(),
    )
    sinks = []
    directory = settings.AUDIT_ANCHOR_DIR
    if directory:
        anchor_file_write(directory=Path(directory), anchor=anchor)
        sinks.append("file")
    posted = None
    if settings.AUDIT_ANCHOR_URL:
        try:
            anchor_post(url=settings.AUDIT_ANCHOR_URL, anchor=anchor, timeout=10.0)
            posted = True
            sinks.append("url")
        except OSError as error:
            posted = False
            logger.warning("audit anchor not posted", extra={"error": type(error).__name__})
    with transaction.atomic():
        record(
            event=Event.AUDIT_ANCHORED,
            extra={
                "seq": anchor["seq"], "row_hash": anchor["row_hash"], "key_id": anchor["key_id"],
                "sinks": sinks, **({"posted": posted} if posted is not None else {}),
            },
        )  # fmt: skip
    logger.info("audit chain anchored", extra={"seq": anchor["seq"], "sinks": sinks})
    return anchor
