"""The e-mails sent outside the trust space — pure functions, CRLF bytes.

- ``build_pgp_mime``: RFC 3156 ``multipart/encrypted``: the whole inner MIME entity (body and
  attachments, with the real subject as a protected header) encrypted to the recipient's key,
  under a neutral outer subject.
- ``build_encrypted_files``: a short French notice (no subject unless allowed, no body) with the
  body and each attachment as a symmetric ``.pgp`` file under neutral names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from email import policy
from email.encoders import encode_7or8bit
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.parser import BytesParser
from email.utils import format_datetime, formataddr

from django.utils.translation import gettext as _

SMTP_POLICY = policy.SMTP.clone(cte_type="7bit")

# Headers that describe the inner entity and stay on it; every other header of the original
# (Bcc included) is dropped, then the protected headers are written again.
_PROTECTED = ("Subject", "From", "To", "Cc", "Date", "Message-ID", "In-Reply-To", "References")


def outer_subject(*, sender: str, subject: str, subject_in_clear: bool) -> str:
    """``"Message sécurisé de Dr X"``, or the real subject when the sender said it is
    harmless."""
    if subject_in_clear and subject.strip():
        return subject.strip()
    return _("Message sécurisé de %(sender)s") % {"sender": sender}


def _headers(
    msg, *, from_: tuple[str, str], to: str, subject: str, message_id: str, date: datetime
) -> None:
    msg["From"] = formataddr(from_)
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{message_id}>"


def inner_entity(original_raw: bytes) -> bytes:
    """The MIME entity to encrypt: the original message's body part(s) and attachments, with
    its Subject/From/To/Cc/Date as protected headers (``protected-headers="v1"``), in canonical
    CRLF form (RFC 3156, 5)."""
    original = BytesParser(policy=SMTP_POLICY).parsebytes(original_raw)
    kept = {name: original.get_all(name) for name in _PROTECTED if original.get(name)}
    for name in list(dict.fromkeys(original.keys())):
        if not name.lower().startswith("content-"):
            del original[name]
    for name, values in kept.items():
        for value in values:
            original[name] = value
    original.set_param("protected-headers", "v1")
    return original.as_bytes(policy=SMTP_POLICY)


def build_pgp_mime(
    *,
    original_raw: bytes,
    encrypt: Callable[[bytes], bytes],
    from_: tuple[str, str],
    to: str,
    subject: str,
    message_id: str,
    date: datetime,
) -> bytes:
    """RFC 3156 ``multipart/encrypted`` to ``to``: ``encrypt`` gets the inner entity and
    returns the ASCII-armoured OpenPGP message."""
    armored = encrypt(inner_entity(original_raw))
    outer = MIMEMultipart("encrypted", protocol="application/pgp-encrypted", policy=SMTP_POLICY)
    outer.preamble = "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)"
    version = MIMEApplication(
        b"Version: 1\r\n", "pgp-encrypted", encode_7or8bit, policy=SMTP_POLICY
    )
    version["Content-Description"] = "PGP/MIME version identification"
    body = MIMEApplication(
        armored, "octet-stream", encode_7or8bit, name="encrypted.asc", policy=SMTP_POLICY
    )
    body["Content-Description"] = "OpenPGP encrypted message"
    body.add_header("Content-Disposition", "inline", filename="encrypted.asc")
    outer.attach(version)
    outer.attach(body)
    _headers(outer, from_=from_, to=to, subject=subject, message_id=message_id, date=date)
    return outer.as_bytes(policy=SMTP_POLICY)


def encrypted_file_names(names: Sequence[str]) -> list[str]:
    """Neutral names for the encrypted files (a file name may say too much): ``message.txt``,
    then ``piece-jointe-1.pdf``… (the extension kept so that the decrypted file opens)."""
    result = []
    for index, name in enumerate(names, start=1):
        _stem, dot, ext = name.rpartition(".")
        ext = ext.lower() if dot and ext.isalnum() and len(ext) <= 5 else "bin"
        result.append(f"piece-jointe-{index}.{ext}")
    return result


def encrypted_files_notice(*, sender: str, sender_address: str, count: int) -> str:
    """The text of the notice: who sends, how to open the files; no content, no file name."""
    return _(
        "Bonjour,\n\n"
        "%(sender)s (%(address)s) vous a transmis %(count)d document(s) depuis sa messagerie "
        "de santé sécurisée. Pour protéger vos données, ils sont chiffrés : le mot de passe "
        "vous est communiqué séparément par %(sender)s (de vive voix ou par SMS), jamais par "
        "courriel.\n\n"
        "Le fichier « message.txt.pgp » contient le message ; les autres fichiers sont les "
        "pièces jointes.\n\n"
        "Pour ouvrir un fichier « .pgp » (chiffrement OpenPGP, AES-256) :\n"
        "- Windows : installez Gpg4win (https://www.gpg4win.org/), ouvrez le fichier avec "
        "Kleopatra (« Déchiffrer/vérifier ») et saisissez le mot de passe, tirets compris ;\n"
        "- macOS : installez GPG Suite (https://gpgtools.org/), puis double-cliquez sur le "
        "fichier ;\n"
        "- Linux : gpg --output piece-jointe-1.pdf --decrypt piece-jointe-1.pdf.pgp ;\n"
        "- Android : l'application OpenKeychain.\n\n"
        "Ne répondez pas à ce courriel avec des informations de santé : une messagerie "
        "ordinaire n'est pas sécurisée.\n"
    ) % {"sender": sender, "address": sender_address, "count": count}


def build_encrypted_files(
    *,
    from_: tuple[str, str],
    to: str,
    subject: str,
    notice: str,
    files: Sequence[tuple[str, bytes]],
    message_id: str,
    date: datetime,
) -> bytes:
    """The notice e-mail with the encrypted files (``(name without .pgp, encrypted bytes)``)
    attached as ``application/pgp-encrypted`` ``<name>.pgp``."""
    msg = EmailMessage(policy=SMTP_POLICY)
    _headers(msg, from_=from_, to=to, subject=subject, message_id=message_id, date=date)
    msg.set_content(notice)
    for name, data in files:
        msg.add_attachment(
            data, maintype="application", subtype="pgp-encrypted", filename=f"{name}.pgp"
        )
    return msg.as_bytes()
