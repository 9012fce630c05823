"""The VAPID key pair, read from settings when used, never at import.

With ``DEBUG`` or ``TESTING`` and no key configured, a pair is generated once into
``VAR_DIR/dev-vapid-key`` (mode 600), like the development storage key. In production, missing
keys mean ``ImproperlyConfigured`` at first use.
"""

import base64
import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEV_KEY_FILE = "dev-vapid-key"


@dataclass(frozen=True)
class VapidKeys:
    private_key: str  # base64url of the 32-byte private scalar
    public_key: str  # base64url of the 65-byte uncompressed point (applicationServerKey)
    subject: str


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_of(private_key: str) -> str:
    key = ec.derive_private_key(int.from_bytes(b64url_decode(private_key), "big"), ec.SECP256R1())
    return b64url(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def new_private_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def vapid_keys() -> VapidKeys:
    private = settings.WEBPUSH_VAPID_PRIVATE_KEY
    subject = settings.WEBPUSH_VAPID_SUBJECT
    dev = getattr(settings, "DEBUG", False) or getattr(settings, "TESTING", False)
    if not private:
        if not dev:
            raise ImproperlyConfigured(
                "Web Push needs WEBPUSH_VAPID_PRIVATE_KEY, WEBPUSH_VAPID_PUBLIC_KEY and "
                "WEBPUSH_VAPID_SUBJECT in production; see .env.example."
            )
        private = _dev_key(Path(settings.VAR_DIR) / DEV_KEY_FILE)
    public = public_key_of(private)
    if settings.WEBPUSH_VAPID_PUBLIC_KEY and public != settings.WEBPUSH_VAPID_PUBLIC_KEY:
        raise ImproperlyConfigured(
            "WEBPUSH_VAPID_PUBLIC_KEY is not the public key of WEBPUSH_VAPID_PRIVATE_KEY."
        )
    if not subject:
        if not dev:
            raise ImproperlyConfigured("WEBPUSH_VAPID_SUBJECT (mailto: or https:) is required.")
        subject = (
            settings.SITE_URL if settings.SITE_URL.startswith("https:") else "mailto:dev@localhost"
        )
    return VapidKeys(private_key=private, public_key=public, subject=subject)


def _dev_key(path: Path) -> str:
    """A per-checkout key pair for local use, created once (atomically, mode 600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(new_private_key() + "\n")
            with contextlib.suppress(FileExistsError):  # another process was first: keep its key
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()
