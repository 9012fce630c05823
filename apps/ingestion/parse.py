"""Parse a raw RFC 5322 message into a ``ParsedMessage`` — pure, total, JSON-friendly.

``parse_message(raw)`` never raises: whatever it cannot read it leaves empty and says so in
``defects`` (short, stable strings naming the place and the kind of problem, never header
values, so they can be logged). It walks at most ``MAX_PARTS`` MIME parts and ``MAX_DEPTH``
levels of nesting; past that it stops and records a defect.

The HTML body is returned as received: the caller sanitises it (``sanitize.sanitize_html``)
before showing it. Attachment payloads are in ``Attachment.payload`` and left out of
``to_dict()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.errors import UndecodableBytesDefect
from email.generator import BytesGenerator
from email.header import decode_header, make_header
from email.headerregistry import Address as _HeaderAddress
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser, HeaderParser
from email.utils import getaddresses
from io import BytesIO
from typing import Any

from .sanitize import html_to_text

MAX_PARTS = 500
MAX_DEPTH = 20
MAX_DEFECTS = 50
MAX_REFERENCES = 100
MAX_FILENAME = 200

XDM_ATTACHMENT = "IHE_XDM.ZIP"
# MSSANTE.md §4: "XDM/1.0/DDM+<libellé> …"; also hidden after reply/forward prefixes.
_XDM_PREFIX = re.compile(r"^((?:\s*(?:re|fwd?|tr|aw|wg)\s*:\s*)*)XDM/1\.0/DDM\+\s*", re.I)
_MSG_ID = re.compile(r"<([^<>\s]+)>")
_BARE_ID = re.compile(r"^[^<>\s]+$")
_SURROGATES = re.compile(r"[\udc80-\udcff]")
_FILENAME_FORBIDDEN = set('/\\:*?"<>|\ufffd')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.I)
_KNOWN_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/xml": ".xml",
    "text/xml": ".xml",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/rfc822-headers": ".txt",
    "message/rfc822": ".eml",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
}
_MIMETYPES = mimetypes.MimeTypes()  # Python's built-in table only: the same on every machine
_PARSER = BytesParser(policy=policy.default)
_REPORT_STATUS_TYPES = {"message/delivery-status", "message/disposition-notification"}


@dataclass(frozen=True)
class Address:
    name: str
    address: str  # local part as received, domain lower-cased

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "address": self.address}


@dataclass(frozen=True)
class Attachment:
    filename: str  # safe to use as a download name
    content_type: str
    size: int
    sha256: str
    disposition: str  # "attachment" or "inline"
    content_id: str | None
    payload: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "disposition": self.disposition,
            "content_id": self.content_id,
        }


@dataclass(frozen=True)
class ReportEntry:
    """One recipient of a DSN (RFC 3464), or the one recipient of an MDN (RFC 8098)."""

    final_recipient: str | None
    action: str | None = None  # DSN: failed, delayed, delivered, relayed, expanded
    status: str | None = None  # DSN: e.g. 5.1.1
    diagnostic: str | None = None
    disposition: str | None = None  # MDN: e.g. manual-action/MDN-sent-manually; displayed

    def to_dict(self) -> dict[str, Any]:
        return {
            "final_recipient": self.final_recipient,
            "action": self.action,
            "status": self.status,
            "diagnostic": self.diagnostic,
            "disposition": self.disposition,
        }


@dataclass(frozen=True)
class Report:
    kind: str  # "dsn" or "mdn"
    original_message_id: str | None
    original_envelope_id: str | None
    entries: tuple[ReportEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "original_message_id": self.original_message_id,
            "original_envelope_id": self.original_envelope_id,
            "entries": [entry.to_dict() for entry in self.entries],
        }


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    date: datetime | None  # aware, UTC
    from_: Address | None
    sender: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    subject: str
    display_subject: str  # subject without the XDM/1.0/DDM+ prefix
    text: str  # the text/plain body, or a text version of the HTML body
    html: str | None  # NOT sanitised
    attachments: tuple[Attachment, ...]
    importance: str  # "urgent" or "normal"
    disposition_notification_to: str | None
    return_receipt_to: str | None
    x_mss_codecda: tuple[str, ...]
    x_mss_ins: str | None  # "O", "N" or None
    x_mss_nil: str | None
    x_mss_mes: str | None  # e.g. "FIN"
    is_report: str | None  # "dsn", "mdn" or None
    report: Report | None
    has_xdm: bool
    defects: tuple[str, ...]

    @property
    def urgent(self) -> bool:
        return self.importance == "urgent"

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "date": self.date.isoformat() if self.date else None,
            "from": self.from_.to_dict() if self.from_ else None,
            "sender": self.sender.to_dict() if self.sender else None,
            "reply_to": [a.to_dict() for a in self.reply_to],
            "to": [a.to_dict() for a in self.to],
            "cc": [a.to_dict() for a in self.cc],
            "bcc": [a.to_dict() for a in self.bcc],
            "subject": self.subject,
            "display_subject": self.display_subject,
            "text": self.text,
            "html": self.html,
            "attachments": [a.to_dict() for a in self.attachments],
            "importance": self.importance,
            "disposition_notification_to": self.disposition_notification_to,
            "return_receipt_to": self.return_receipt_to,
            "x_mss_codecda": list(self.x_mss_codecda),
            "x_mss_ins": self.x_mss_ins,
            "x_mss_nil": self.x_mss_nil,
            "x_mss_mes": self.x_mss_mes,
            "is_report": self.is_report,
            "report": self.report.to_dict() if self.report else None,
            "has_xdm": self.has_xdm,
            "defects": list(self.defects),
        }


# --- small helpers ---------------------------------------------------------------------------


class _Defects:
    """Ordered, de-duplicated, capped list of defect strings."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._seen: set[str] = set()

    def add(self, text: str) -> None:
        if text in self._seen:
            return
        self._seen.add(text)
        if len(self.items) < MAX_DEFECTS:
            self.items.append(text)
        elif len(self.items) == MAX_DEFECTS:
            self.items.append("more defects not listed")

    def add_all(self, where: str, defects: Any) -> None:
        for defect in defects or ():
            self.add(f"{where}: {type(defect).__name__}")


def display_subject(subject: str) -> str:
    """``subject`` without the ``XDM/1.0/DDM+`` prefix of structured-document messages."""
    return _XDM_PREFIX.sub(lambda m: m.group(1), subject, count=1)


def _one_line(value: str) -> str:
    """Header text for display: undecodable bytes guessed, controls removed, spaces collapsed."""
    if _SURROGATES.search(value):
        raw = value.encode("utf-8", "surrogateescape")
        value = _decode_bytes(raw)
    value = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in value)
    return " ".join(value.split())


def _decode_bytes(raw: bytes) -> str:
    for encoding in ("utf-8", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _header_values(msg: Message, name: str, defects: _Defects) -> list[Any]:
    """The parsed header objects of every ``name`` field (policy.default), [] when absent or
    when the library cannot read them."""
    try:
        values = msg.get_all(name) or []
    except Exception:  # a header the library cannot parse
        defects.add(f"header {name}: unreadable")
        return []
    for value in values:
        defects.add_all(
            f"header {name}",
            [d for d in getattr(value, "defects", ()) if not isinstance(d, UndecodableBytesDefect)],
        )
    return values


def _header_text(msg: Message, name: str, defects: _Defects) -> str | None:
    values = _header_values(msg, name, defects)
    if not values:
        return None
    try:
        text = str(values[0])
        if "\ufffd" in text:  # raw 8-bit bytes the policy replaced: read them ourselves
            text = _raw_header_text(msg, name) or text
        return _one_line(text)
    except Exception:
        defects.add(f"header {name}: unreadable")
        return None


def _raw_header_text(msg: Message, name: str) -> str | None:
    """The first ``name`` field as received, 8-bit bytes decoded (UTF-8, else Windows-1252),
    RFC 2047 words decoded. ``raw_items`` is the library's own accessor for unparsed fields."""
    for key, value in msg.raw_items():
        if key.lower() != name or not isinstance(value, str):
            continue
        text = _decode_bytes(value.encode("utf-8", "surrogateescape"))
        if "=?" in text:
            with contextlib.suppress(Exception):  # else keep the words undecoded
                text = str(make_header(decode_header(text)))
        return text
    return None


def _make_address(display_name: str, username: str, domain: str) -> Address:
    addr_spec = _HeaderAddress(username=username, domain=domain.lower()).addr_spec
    return Address(name=_one_line(display_name or ""), address=_one_line(addr_spec))


def _addresses(msg: Message, name: str, defects: _Defects) -> tuple[Address, ...]:
    out: list[Address] = []
    for value in _header_values(msg, name, defects):
        try:
            found = [(a.display_name, a.username, a.domain) for a in value.addresses]
        except Exception:  # fall back on the lenient legacy parser
            defects.add(f"header {name}: unparsable address list")
            found = []
            for display, spec in getaddresses([str(value)]):
                local, _, domain = spec.rpartition("@")
                found.append((display, local, domain))
        for display, username, domain in found:
            if not username or not domain or "@" in domain or " " in domain:
                defects.add(f"header {name}: invalid address skipped")
                continue
            try:
                out.append(_make_address(display, username, domain))
            except Exception:
                defects.add(f"header {name}: invalid address skipped")
    return tuple(out)


def _first_address(msg: Message, name: str, defects: _Defects) -> Address | None:
    found = _addresses(msg, name, defects)
    return found[0] if found else None


def _msg_ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = _MSG_ID.findall(value)
    if not found and _BARE_ID.match(value.strip()):
        found = [value.strip()]
    return found


def _date(msg: Message, defects: _Defects) -> datetime | None:
    values = _header_values(msg, "date", defects)
    if not values:
        return None
    try:
        value = values[0].datetime
        if value is None:
            return None
        if value.tzinfo is None:  # "-0000": time in UTC, no zone information
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except Exception:  # out-of-range dates and the like
        defects.add("header date: unusable")
        return None


def _importance(msg: Message, defects: _Defects) -> str:
    importance = (_header_text(msg, "importance", defects) or "").lower()
    x_priority = _header_text(msg, "x-priority", defects) or ""
    priority = (_header_text(msg, "priority", defects) or "").lower()
    if importance == "high" or priority == "urgent" or re.match(r"[12](\D|$)", x_priority):
        return "urgent"
    return "normal"


@dataclass(frozen=True)
class _Part:
    """A MIME part with its Content-Type read once (policy.default re-parses a header on
    every access, which dominated the parse time)."""

    name: str  # "message" or "part N", for defects
    msg: Message
    content_type: str
    params: dict[str, str]
    disposition: str | None = None  # leaves only
    filename: str | None = None  # leaves only; decoded, not yet made safe

    @property
    def is_container(self) -> bool:
        return self.content_type.startswith("multipart/") and self.msg.is_multipart()


def _describe(name: str, part: Message) -> _Part:
    params: dict[str, str] = {}
    try:
        header = part.get("content-type")
        if header is None:
            content_type = part.get_default_type()
        else:  # as Message.get_content_type() does, without parsing the header twice
            content_type = str(header).partition(";")[0].strip().lower()
            if content_type.count("/") != 1:
                content_type = "text/plain"
            with contextlib.suppress(Exception):
                params = {key.lower(): str(value) for key, value in header.params.items()}
    except Exception:
        content_type = "application/octet-stream"
    node = _Part(name, part, content_type, params)
    if node.is_container:
        return node
    return _Part(name, part, content_type, params, _disposition(part), _raw_filename(part))


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def _raw_filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    if not name:
        return None
    if "=?" in name:  # RFC 2047 inside a quoted parameter: wrong but common
        with contextlib.suppress(Exception):  # else keep the name as it came
            name = str(make_header(decode_header(name)))
    return _one_line(name) if _SURROGATES.search(name) else name


def fallback_extension(content_type: str) -> str:
    return (
        _KNOWN_EXTENSIONS.get(content_type)
        or _MIMETYPES.guess_extension(content_type, strict=False)
        or ".bin"
    )


def safe_filename(name: str | None, *, content_type: str, index: int) -> str:
    """A download name that is safe on any file system: no path separators, controls, bidi
    overrides or reserved characters, at most ``MAX_FILENAME`` characters (extension kept);
    ``piece-jointe-<index><ext>`` when nothing usable is left."""
    cleaned = ""
    if name:
        name = unicodedata.normalize("NFC", name)
        cleaned = "".join(
            "_"
            if ch in _FILENAME_FORBIDDEN or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
            else ch
            for ch in name
        )
        cleaned = " ".join(cleaned.split()).strip(" .")
        if _WINDOWS_RESERVED.match(cleaned):
            cleaned = "_" + cleaned
        if len(cleaned) > MAX_FILENAME:
            stem, dot, ext = cleaned.rpartition(".")
            if dot and stem and len(ext) <= 16:
                cleaned = stem[: MAX_FILENAME - len(ext) - 1].rstrip(" .") + "." + ext
            else:
                cleaned = cleaned[:MAX_FILENAME].rstrip(" .")
    if not cleaned.strip("_ "):
        return f"piece-jointe-{index}{fallback_extension(content_type)}"
    return cleaned


def _decode_text(payload: bytes, charset: str | None, defects: _Defects, where: str) -> str:
    if charset:
        try:
            return payload.decode(charset)
        except LookupError:
            defects.add(f"{where}: unknown charset")
        except UnicodeDecodeError:
            defects.add(f"{where}: text does not match its charset")
    return _decode_bytes(payload)


def _charset(node: _Part) -> str | None:
    charset = node.params.get("charset", "").strip().lower()
    return charset if charset and charset.isascii() else None


def _unflow(text: str, *, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed soft line breaks."""
    out: list[str] = []
    current: str | None = None
    current_depth = -1
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        if body.startswith(" "):
            body = body[1:]  # space-stuffing
        if current is not None and depth == current_depth:
            current += body
        else:
            if current is not None:
                out.append((">" * current_depth + " " if current_depth else "") + current)
            current, current_depth = body, depth
        if body.endswith(" ") and body != "-- ":
            if delsp:
                current = current[:-1]
            continue
        out.append((">" * current_depth + " " if current_depth else "") + current)
        current, current_depth = None, -1
    if current is not None:
        out.append((">" * current_depth + " " if current_depth else "") + current)
    return "\n".join(out)


def _part_text(node: _Part, defects: _Defects, where: str) -> str:
    payload = _safe_payload(node, defects)
    text = _decode_text(payload, _charset(node), defects, where)
    # NUL cannot be stored in a PostgreSQL text column and is never meaningful in mail.
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if node.content_type == "text/plain" and node.params.get("format", "").lower() == "flowed":
        text = _unflow(text, delsp=node.params.get("delsp", "").lower() == "yes")
    return text


def _safe_payload(node: _Part, defects: _Defects) -> bytes:
    try:
        return _payload_bytes(node)
    except Exception:
        defects.add(f"{node.name}: unreadable content")
        return b""


def _payload_bytes(node: _Part) -> bytes:
    """The decoded content of a leaf part (transfer encoding undone); an embedded message is
    serialised back to bytes."""
    part = node.msg
    if node.content_type.startswith("message/") or part.is_multipart():
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            buffer = BytesIO()
            generator = BytesGenerator(
                buffer, mangle_from_=False, policy=policy.default.clone(refold_source="none")
            )
            generator.flatten(inner[0])
            return buffer.getvalue()
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


# --- the MIME tree ---------------------------------------------------------------------------


class _TooManyParts(Exception):
    pass


def _walk(msg: Message, defects: _Defects) -> list[_Part]:
    """Every part in document order, named ``message`` / ``part N``, within the part and depth
    limits. Embedded messages (message/*) are not entered: their inside belongs to them."""
    parts: list[_Part] = []

    def visit(part: Message, depth: int) -> None:
        if len(parts) >= MAX_PARTS:
            defects.add(f"message: more than {MAX_PARTS} parts, the rest ignored")
            raise _TooManyParts
        node = _describe("message" if depth == 0 else f"part {len(parts)}", part)
        parts.append(node)
        if node.is_container:
            if depth >= MAX_DEPTH:
                defects.add(f"message: nesting deeper than {MAX_DEPTH}, the rest ignored")
                return
            for sub in part.get_payload():
                visit(sub, depth + 1)

    with contextlib.suppress(_TooManyParts):
        visit(msg, 0)
    return parts


def _is_body_candidate(node: _Part) -> bool:
    return node.disposition != "attachment" and node.filename is None


def _report(
    root: _Part, leaves: list[_Part], defects: _Defects
) -> tuple[str | None, Report | None]:
    if root.content_type != "multipart/report":
        return None, None
    report_type = root.params.get("report-type", "").lower()
    kind = {"delivery-status": "dsn", "disposition-notification": "mdn"}.get(report_type)
    types = {node.content_type for node in leaves}
    if kind is None and "message/delivery-status" in types:
        kind = "dsn"
    elif kind is None and "message/disposition-notification" in types:
        kind = "mdn"
    if kind is None:
        return None, None
    try:
        return kind, _read_report(kind, leaves)
    except Exception:
        defects.add(f"report: unreadable {kind}")
        return kind, Report(kind, None, None, ())


def _field(block: Message, name: str) -> str | None:
    value = block.get(name)
    if value is None:
        return None
    text = _one_line(str(value))
    return text or None


def _recipient(value: str | None) -> str | None:
    """``rfc822; someone@example.org`` → ``someone@example.org`` (domain lower-cased)."""
    if not value:
        return None
    address = value.partition(";")[2].strip() if ";" in value else value.strip()
    address = address.strip("<>")
    local, at, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}" if at else address or None


def _read_report(kind: str, leaves: list[_Part]) -> Report:
    status_type = "message/delivery-status" if kind == "dsn" else "message/disposition-notification"
    status_part = next((node for node in leaves if node.content_type == status_type), None)
    blocks = status_part.msg.get_payload() if status_part is not None else []
    if not isinstance(blocks, list):  # not split into header blocks by the library
        text = _payload_bytes(status_part).decode("utf-8", "replace")
        blocks = [HeaderParser(policy=policy.default).parsestr(b) for b in text.split("\n\n")]
    original_id = None
    envelope_id = None
    entries: list[ReportEntry] = []
    if kind == "dsn":
        if blocks:
            envelope_id = _field(blocks[0], "original-envelope-id")
        for block in blocks[1:]:
            if _field(block, "final-recipient") is None and _field(block, "action") is None:
                continue
            status = _field(block, "status")
            entries.append(
                ReportEntry(
                    final_recipient=_recipient(_field(block, "final-recipient")),
                    action=(_field(block, "action") or "").lower() or None,
                    status=status.split()[0] if status else None,
                    diagnostic=_field(block, "diagnostic-code"),
                )
            )
        for node in leaves:
            if node.content_type in ("message/rfc822", "text/rfc822-headers"):
                headers = BytesHeaderParser(policy=policy.default).parsebytes(_payload_bytes(node))
                ids = _msg_ids(_field(headers, "message-id"))
                original_id = ids[0] if ids else None
                break
    else:
        block = blocks[0] if blocks else EmailMessage()
        ids = _msg_ids(_field(block, "original-message-id"))
        original_id = ids[0] if ids else None
        entries.append(
            ReportEntry(
                final_recipient=_recipient(_field(block, "final-recipient")),
                disposition=_field(block, "disposition"),
            )
        )
    return Report(kind, original_id, envelope_id, tuple(entries))


# --- the entry point -------------------------------------------------------------------------


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse ``raw`` (the message as received, CRLF or LF). Never raises."""
    defects = _Defects()
    try:
        msg = _PARSER.parsebytes(raw)
    except Exception as exc:  # e.g. RecursionError on absurd nesting
        defects.add(f"message: unparsable body ({type(exc).__name__})")
        try:  # keep at least the header fields
            msg = BytesHeaderParser(policy=policy.default).parsebytes(raw)
            msg.set_payload("")
            del msg["content-type"]
        except Exception:
            msg = EmailMessage()
    try:
        return _parse(msg, defects)
    except Exception as exc:  # last resort: an empty message, with the reason
        defects.add(f"message: unreadable ({type(exc).__name__})")
        return _parse(EmailMessage(), defects)


def _parse(msg: Message, defects: _Defects) -> ParsedMessage:
    subject = _header_text(msg, "subject", defects) or ""
    parts = _walk(msg, defects)
    leaves = [node for node in parts if not node.is_container]
    is_report, report = _report(parts[0], leaves, defects)

    text_part = html_part = None
    for node in leaves:
        if node.content_type == "text/plain" and text_part is None:
            if _is_body_candidate(node):
                text_part = node
        elif node.content_type == "text/html" and html_part is None:
            if _is_body_candidate(node):
                html_part = node
        elif node.content_type.startswith("multipart/") and text_part is None:
            text_part = node  # a multipart without its boundary: read it as text
    html = _part_text(html_part, defects, "html body") if html_part is not None else None
    if text_part is not None:
        text = _part_text(text_part, defects, "text body")
    else:
        text = html_to_text(html) if html else ""

    attachments: list[Attachment] = []
    for node in leaves:
        if node is text_part or node is html_part:
            continue
        content_type = node.content_type
        if is_report and content_type in _REPORT_STATUS_TYPES:
            continue
        payload = _safe_payload(node, defects)
        raw_name = node.filename
        if content_type.startswith("text/") and not payload.strip() and not raw_name:
            continue  # empty filler parts some mailers add
        index = len(attachments) + 1
        if raw_name is None and content_type == "message/rfc822":
            raw_name = "message.eml"
        try:
            content_id = _msg_ids(_one_line(str(node.msg.get("content-id") or "")))
        except Exception:
            content_id = []
        disposition = node.disposition
        if disposition not in ("inline", "attachment"):
            disposition = "inline" if content_id else "attachment"
        attachments.append(
            Attachment(
                filename=safe_filename(raw_name, content_type=content_type, index=index),
                content_type=content_type,
                size=len(payload),
                sha256=hashlib.sha256(payload).hexdigest(),
                disposition=disposition,
                content_id=content_id[0] if content_id else None,
                payload=payload,
            )
        )

    ins = (_header_text(msg, "x-mss-ins", defects) or "").upper() or None
    if ins not in (None, "O", "N"):
        defects.add("header x-mss-ins: unexpected value")
        ins = None
    codes: list[str] = []
    for value in _header_values(msg, "x-mss-codecda", defects):
        codes.extend(code.strip() for code in _one_line(str(value)).split(",") if code.strip())
    mes = _header_text(msg, "x-mss-mes", defects)
    message_ids = _msg_ids(_header_text(msg, "message-id", defects))
    references = _msg_ids(_header_text(msg, "references", defects))[:MAX_REFERENCES]
    in_reply_to = _msg_ids(_header_text(msg, "in-reply-to", defects))

    for node in parts:  # after decoding, which adds the transfer-encoding defects
        defects.add_all(node.name, node.msg.defects)

    return ParsedMessage(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(references),
        date=_date(msg, defects),
        from_=_first_address(msg, "from", defects),
        sender=_first_address(msg, "sender", defects),
        reply_to=_addresses(msg, "reply-to", defects),
        to=_addresses(msg, "to", defects),
        cc=_addresses(msg, "cc", defects),
        bcc=_addresses(msg, "bcc", defects),
        subject=subject,
        display_subject=display_subject(subject),
        text=text,
        html=html,
        attachments=tuple(attachments),
        importance=_importance(msg, defects),
        disposition_notification_to=_address_only(msg, "disposition-notification-to", defects),
        return_receipt_to=_address_only(msg, "return-receipt-to", defects),
        x_mss_codecda=tuple(codes),
        x_mss_ins=ins,
        x_mss_nil=_header_text(msg, "x-mss-nil", defects) or None,
        x_mss_mes=mes.upper() if mes else None,
        is_report=is_report,
        report=report,
        has_xdm=any(a.filename.upper() == XDM_ATTACHMENT for a in attachments),
        defects=tuple(defects.items),
    )


def _address_only(msg: Message, name: str, defects: _Defects) -> str | None:
    """The address of a single-address header that the policy treats as unstructured."""
    value = _header_text(msg, name, defects)
    if not value:
        return None
    for _display, spec in getaddresses([value]):
        local, at, domain = spec.rpartition("@")
        if at and local and domain:
            return f"{local}@{domain.lower()}"
    defects.add(f"header {name}: invalid address")
    return None
