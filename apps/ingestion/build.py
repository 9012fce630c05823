"""Build outgoing RFC 5322 messages — pure functions, ``email.policy.SMTP`` (CRLF, folded,
RFC 2047/2231-encoded, 7-bit transfer encodings chosen by the library).

``build_message`` returns the bytes to hand to the SMTP client; ``Bcc`` recipients are never
written in them (the caller passes them in the envelope only). Values that would let a user
inject headers (CR or LF in a subject, a display name, an address, an id or an extra header)
are refused with ``MessageBuildError``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from typing import BinaryIO
from zoneinfo import ZoneInfo

from apps.core.exceptions import ApplicationError

from .parse import safe_filename

SMTP_POLICY = policy.SMTP.clone(cte_type="7bit")  # CRLF; 8-bit data always encoded
MAX_LINE = 998
_ID = re.compile(r"^[^\s<>@]+@[^\s<>@]+$")
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII without ":" (RFC 5322 ftext)
_PROTECTED_HEADERS = {
    "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id",
    "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
    "content-disposition", "importance", "x-priority", "disposition-notification-to",
}  # fmt: skip
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv)\s*(\[\d+\])?\s*:", re.I)
_FORWARD_PREFIX = re.compile(r"^\s*(fwd?|tr|wg)\s*:", re.I)
_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip
PARIS = ZoneInfo("Europe/Paris")


class MessageBuildError(ApplicationError):
    """The message cannot be built as asked (header injection, invalid address or id…)."""


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    data: bytes | Callable[[], BinaryIO]  # bytes, or a callable opening a binary stream
    content_id: str | None = None  # inline part of the HTML (``cid:``), without <>

    def read(self) -> bytes:
        if isinstance(self.data, bytes | bytearray | memoryview):
            return bytes(self.data)
        with self.data() as stream:
            return stream.read()


def _no_newline(value: str, what: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise MessageBuildError(f"Caractère de fin de ligne interdit dans {what}.")
    return value


def _address(pair: tuple[str, str], what: str) -> Address:
    name, addr = pair
    _no_newline(name or "", what)
    _no_newline(addr, what)
    local, at, domain = addr.strip().rpartition("@")
    if not at or not local or not _DOMAIN.match(domain) or not addr.isascii():
        raise MessageBuildError(f"Adresse invalide dans {what}.")
    try:
        return Address(display_name=" ".join((name or "").split()), addr_spec=addr.strip())
    except Exception as exc:  # HeaderParseError, ValueError, IndexError
        raise MessageBuildError(f"Adresse invalide dans {what}.") from exc


def _msg_id(value: str, what: str) -> str:
    value = value.strip().strip("<>")
    if not _ID.match(value) or not value.isascii():
        raise MessageBuildError(f"Identifiant de message invalide ({what}).")
    return f"<{value}>"


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def build_message(
    *,
    from_: tuple[str, str],
    to: Sequence[tuple[str, str]],
    cc: Sequence[tuple[str, str]] = (),
    bcc: Sequence[tuple[str, str]] = (),
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Iterable[OutgoingAttachment] = (),
    message_id: str,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    date: datetime,
    urgent: bool = False,
    read_receipt_to: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """The message as bytes (CRLF). ``bcc`` is validated but not written: give those
    addresses to the SMTP envelope only. Raises ``MessageBuildError``."""
    if date.tzinfo is None or date.utcoffset() is None:
        raise MessageBuildError("La date du message doit porter un fuseau horaire.")
    if not to and not cc and not bcc:
        raise MessageBuildError("Le message n'a aucun destinataire.")
    _no_newline(subject, "l'objet")
    for pair in bcc:
        _address(pair, "Cci")

    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = _address(from_, "l'expéditeur")
    if to:
        msg["To"] = [_address(pair, "À") for pair in to]
    if cc:
        msg["Cc"] = [_address(pair, "Cc") for pair in cc]
    msg["Subject"] = " ".join(subject.split())
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = _msg_id(message_id, "Message-ID")
    if in_reply_to:
        msg["In-Reply-To"] = _msg_id(in_reply_to, "In-Reply-To")
    if references:
        msg["References"] = " ".join(_msg_id(ref, "References") for ref in references)
    if urgent:
        msg["Importance"] = "high"
        msg["X-Priority"] = "1 (Highest)"
    if read_receipt_to:
        msg["Disposition-Notification-To"] = str(_address(("", read_receipt_to), "l'accusé"))
    for name, value in (extra_headers or {}).items():
        if not _HEADER_NAME.match(name) or name.lower() in _PROTECTED_HEADERS:
            raise MessageBuildError("En-tête supplémentaire refusé.")
        msg[name] = " ".join(_no_newline(value, name).split())

    msg.set_content(_normalise_newlines(text), subtype="plain", charset="utf-8")
    if html is not None:
        msg.add_alternative(_normalise_newlines(html), subtype="html", charset="utf-8")

    files = list(attachments)
    inline = [a for a in files if a.content_id and html is not None]
    if inline:
        html_part = msg.get_payload()[1]
        for attachment in inline:
            _attach(html_part, attachment, related=True)
    inline_ids = {id(a) for a in inline}
    for index, attachment in enumerate(files, start=1):
        if id(attachment) not in inline_ids:
            _attach(msg, attachment, index=index)
    for part in msg.iter_parts() if msg.is_multipart() else ():
        _drop_inner_mime_version(part)
    return msg.as_bytes()


def _drop_inner_mime_version(part: EmailMessage) -> None:
    """The library stamps MIME-Version on every part it creates; it belongs on the top only."""
    del part["MIME-Version"]
    if part.get_content_maintype() == "multipart":
        for sub in part.iter_parts():
            _drop_inner_mime_version(sub)


def _attach(
    target: EmailMessage, attachment: OutgoingAttachment, *, related: bool = False, index: int = 1
) -> None:
    content_type = attachment.content_type.strip().lower()
    maintype, _, subtype = content_type.partition("/")
    if not maintype or not subtype or not _HEADER_NAME.match(content_type):
        maintype, subtype = "application", "octet-stream"
    filename = safe_filename(
        _no_newline(attachment.filename, "un nom de fichier"),
        content_type=f"{maintype}/{subtype}",
        index=index,
    )
    data = attachment.read()
    if related:
        target.add_related(
            data,
            maintype=maintype,
            subtype=subtype,
            cid=_msg_id(attachment.content_id or "", "Content-ID"),
            filename=filename,
            disposition="inline",
        )
        return
    if (maintype, subtype) == ("message", "rfc822"):
        embedded = _embedded_message(data)
        if embedded is not None:
            target.add_attachment(embedded, filename=filename)
            return
        maintype, subtype = "application", "octet-stream"
    target.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)


def _embedded_message(data: bytes) -> EmailMessage | None:
    """A forwarded message to attach as message/rfc822, which RFC 2046 allows only in 7bit or
    8bit, never base64. None when it cannot travel in 7 bits as it is (raw 8-bit content, lines
    over 998 bytes): the caller then sends it as a base64 application/octet-stream file."""
    if any(len(line) > MAX_LINE for line in data.splitlines()):
        return None
    embedded = BytesParser(policy=SMTP_POLICY).parsebytes(data)
    try:
        embedded.as_bytes(policy=SMTP_POLICY)
    except (UnicodeError, ValueError):
        return None
    return embedded


def make_message_id(domain: str) -> str:
    """A new, unique Message-ID (without angle brackets): ``<uuid4 hex>.<unix time>@domain``."""
    if not _DOMAIN.match(domain):
        raise MessageBuildError("Domaine invalide pour l'identifiant de message.")
    return f"{uuid.uuid4().hex}.{int(time.time())}@{domain.lower()}"


def reply_subject(subject: str) -> str:
    """``Re: <subject>`` unless it already starts with a reply prefix (Re:, RE :, Re[2]:, AW:)."""
    subject = " ".join(subject.split())
    return subject if _REPLY_PREFIX.match(subject) else f"Re: {subject}"


def forward_subject(subject: str) -> str:
    """``Fwd: <subject>`` (understood by every client, unlike the French ``TR :``) unless it
    already starts with a forward prefix (Fwd:, Fw:, TR:, WG:)."""
    subject = " ".join(subject.split())
    return subject if _FORWARD_PREFIX.match(subject) else f"Fwd: {subject}"


def quote_text(text: str, author: str, date: datetime | None, *, tz=PARIS) -> str:
    """The body of a reply: ``Le 8 janvier 2021 à 11:22, <author> a écrit :`` then every line
    of ``text`` prefixed with ``> `` (``>`` before lines already quoted, and on blank lines)."""
    if date is not None:
        local = date.astimezone(tz) if date.tzinfo else date
        when = f"{local.day} {_MONTHS[local.month - 1]} {local.year} à {local:%H:%M}"
        header = f"Le {when}, {author} a écrit :"
    else:
        header = f"{author} a écrit :"
    lines = _normalise_newlines(text).rstrip("\n").split("\n")
    quoted = [
        ">" + line if line.startswith(">") else ("> " + line if line else ">") for line in lines
    ]
    return "\n".join([header, *quoted])
