"""OpenPGP through GnuPG (python-gnupg): the only module that imports ``gnupg``.

The operator's GnuPG home (``settings.GNUPG_HOME``, made with mode 0700) holds the recipients'
public keys imported on contacts, and nothing secret. Encryption to a key trusts exactly the
fingerprint given (the key the sender imported), never the web of trust; symmetric encryption
(encrypted attachments) uses AES-256 and never caches the passphrase in the agent.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path

import gnupg
from django.conf import settings
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError

logger = logging.getLogger(__name__)

MAX_KEY_SIZE = 256 * 1024  # an armoured public key is a few KB; a big one, a few dozen

# python-gnupg reads gpg's stderr (status lines and messages) through codecs.getreader(encoding)
# with strict errors: one byte of a message that is not UTF-8 ends its reader thread, and the
# result then lacks its status. This encoding is UTF-8 whose reader replaces such bytes.
GPG_ENCODING = "mssweb_gpg_utf_8"


def _gpg_codec(name: str) -> codecs.CodecInfo | None:
    if name != GPG_ENCODING:
        return None
    utf8 = codecs.lookup("utf-8")

    class Reader(utf8.streamreader):
        def __init__(self, stream, errors: str = "replace") -> None:
            super().__init__(stream, "replace")

    return codecs.CodecInfo(
        utf8.encode, utf8.decode, streamreader=Reader, streamwriter=utf8.streamwriter,
        incrementalencoder=utf8.incrementalencoder, incrementaldecoder=utf8.incrementaldecoder,
        name=GPG_ENCODING,
    )  # fmt: skip


codecs.register(_gpg_codec)
_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")


class GpgError(ApplicationError):
    """GnuPG refused or failed; ``message`` is French and safe to show."""


class KeyRefused(GpgError):
    """The key cannot be used to write to this contact (expired, revoked, cannot encrypt…)."""


@dataclass(frozen=True)
class KeyInfo:
    fingerprint: str
    uids: tuple[str, ...]
    emails: frozenset[str]
    created_at: datetime | None
    expires_at: datetime | None


def _home() -> Path:
    home = Path(settings.GNUPG_HOME)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if home.stat().st_mode & 0o077:
        os.chmod(home, 0o700)  # gpg warns (and may refuse) on a home others can read
    return home


def _gpg(home: str | Path | None = None) -> gnupg.GPG:
    gpg = gnupg.GPG(gnupghome=str(home or _home()), gpgbinary=settings.GNUPG_BINARY)
    gpg.encoding = GPG_ENCODING
    return gpg


def _timestamp(value: str) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value and value.isdigit() else None


def _text(data: bytes | str) -> str:
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return data


def key_inspect(data: bytes | str, *, email: str = "") -> KeyInfo:
    """Check one armoured (or binary) OpenPGP public key without importing it: exactly one
    public key, neither expired nor revoked, able to encrypt, and — when ``email`` is given —
    with a user ID for that address. Raises ``KeyRefused`` with a French reason."""
    if len(data) > MAX_KEY_SIZE:
        raise KeyRefused(_("Fichier trop volumineux pour une clé publique OpenPGP."))
    text = _text(data) if isinstance(data, str) or b"-----BEGIN" in data[:4096] else None
    if text is not None and "PRIVATE KEY BLOCK" in text:
        raise KeyRefused(
            _(
                "Ceci est une clé privée : ne la transmettez jamais. Demandez à votre "
                "correspondant sa clé publique (« PUBLIC KEY BLOCK »)."
            )
        )
    gpg = _gpg()
    keys = gpg.scan_keys_mem(text if text is not None else data)
    if not keys:
        raise KeyRefused(_("Aucune clé publique OpenPGP reconnue dans ce texte ou ce fichier."))
    if len(keys) > 1:
        raise KeyRefused(_("Une seule clé publique à la fois, s'il vous plaît."))
    key = keys[0]
    if key.get("type") not in ("pub", None):
        raise KeyRefused(_("Seule une clé publique peut être importée."))
    validity = key.get("trust", "")
    if validity == "r":
        raise KeyRefused(_("Cette clé a été révoquée par son titulaire : elle est refusée."))
    if validity == "e":
        raise KeyRefused(_("Cette clé a expiré : demandez à votre correspondant une clé à jour."))
    if validity in ("i", "d", "n"):
        raise KeyRefused(_("Cette clé n'est pas valide."))
    expires = _timestamp(key.get("expires", ""))
    if expires is not None and expires <= datetime.now(tz=UTC):
        raise KeyRefused(_("Cette clé a expiré : demandez à votre correspondant une clé à jour."))
    if "E" not in key.get("cap", ""):
        raise KeyRefused(
            _(
                "Cette clé ne permet pas de chiffrer (clé de signature seule, ou sous-clé de "
                "chiffrement expirée ou révoquée)."
            )
        )
    uids = tuple(key.get("uids") or ())
    emails = frozenset(parseaddr(uid)[1].strip().lower() for uid in uids if "@" in uid)
    if email and email.strip().lower() not in emails:
        raise KeyRefused(
            _(
                "Cette clé n'est pas celle de %(email)s (elle est au nom de : %(uids)s). "
                "Vérifiez que vous importez la bonne clé."
            )
            % {"email": email, "uids": ", ".join(uids) or "?"}
        )
    return KeyInfo(
        fingerprint=key["fingerprint"].upper(),
        uids=uids,
        emails=emails,
        created_at=_timestamp(key.get("date", "")),
        expires_at=expires,
    )


def key_import(data: bytes | str, *, email: str = "") -> KeyInfo:
    """Inspect (``key_inspect``) then import the public key into the operator's home."""
    info = key_inspect(data, email=email)
    result = _gpg().import_keys(
        _text(data) if isinstance(data, str) or b"-----BEGIN" in data[:4096] else data,
        extra_args=["--import-options", "import-minimal"],
    )
    if info.fingerprint not in {f.upper() for f in (result.fingerprints or [])}:
        logger.warning("openpgp: import failed", extra={"status": result.summary()})
        raise GpgError(_("GnuPG n'a pas pu importer cette clé."))
    logger.info("openpgp: key imported", extra={"fingerprint": info.fingerprint})
    return info


def key_forget(fingerprint: str) -> None:
    """Remove a public key from the operator's home (when no contact uses it any more)."""
    if not _FINGERPRINT.match(fingerprint):
        raise GpgError(_("Empreinte de clé invalide."))
    _gpg().delete_keys(fingerprint)
    logger.info("openpgp: key removed", extra={"fingerprint": fingerprint})


def key_usable(fingerprint: str) -> bool:
    """The key is in the operator's home and still valid for encryption now."""
    if not _FINGERPRINT.match(fingerprint):
        return False
    for key in _gpg().list_keys(keys=[fingerprint]):
        if key["fingerprint"].upper() != fingerprint:
            continue
        expires = _timestamp(key.get("expires", ""))
        return (
            key.get("trust", "") not in ("r", "e", "i", "d", "n")
            and "E" in key.get("cap", "")
            and (expires is None or expires > datetime.now(tz=UTC))
        )
    return False


def encrypt_to_key(data: bytes, *, fingerprint: str) -> bytes:
    """``data`` encrypted to the one key ``fingerprint`` (ASCII-armoured), trusting that key
    only: the sender vouched for it by importing it on the contact."""
    if not _FINGERPRINT.match(fingerprint):
        raise GpgError(_("Empreinte de clé invalide."))
    result = _gpg().encrypt(
        data,
        [fingerprint],
        armor=True,
        always_trust=True,
    )
    if not result.ok:
        logger.warning("openpgp: encryption failed", extra={"status": result.status})
        raise GpgError(_("Chiffrement OpenPGP impossible pour cette clé (expirée ou révoquée ?)."))
    return result.data


def encrypt_symmetric(data: bytes, *, passphrase: str) -> bytes:
    """``data`` encrypted with AES-256 under ``passphrase`` (binary OpenPGP, a ``.pgp`` file
    that GnuPG, Kleopatra or GPG Suite open)."""
    result = _gpg().encrypt(
        data,
        None,
        symmetric="AES256",
        passphrase=passphrase,
        armor=False,
        extra_args=[
            "--s2k-mode", "3", "--s2k-digest-algo", "SHA512",
            "--s2k-count", str(settings.EXTERNAL_S2K_COUNT), "--no-symkey-cache",
        ],
    )  # fmt: skip
    if not result.ok:
        logger.warning("openpgp: symmetric encryption failed", extra={"status": result.status})
        raise GpgError(_("Chiffrement des pièces jointes impossible."))
    return result.data


def decrypt(data: bytes, *, home: str | Path, passphrase: str | None = None) -> bytes:
    """Decrypt with the keys of another GnuPG ``home`` (tests: the recipient's side)."""
    Path(home).mkdir(mode=0o700, parents=True, exist_ok=True)
    result = _gpg(home).decrypt(data, passphrase=passphrase, extra_args=["--no-symkey-cache"])
    if not result.ok:
        raise GpgError(_("Déchiffrement impossible."))
    return result.data
