"""Previews of attachments that cannot run anything.

- PDFs are rendered to PNG images on the server, by PDFium in a separate, boxed-in process
  (``preview_worker.py``: memory, CPU and wall-clock limits, no secrets, no files, no forms
  or JavaScript). The browser only ever receives images: no PDF viewer, no PDF script.
- Raster images (PNG, JPEG, GIF, WebP) are shown as they are, under the type their first bytes
  prove, never the one announced by the sender. SVG (which can hold scripts) is never shown.

The plaintext always comes from ``blob_read_verified``: a tampered object raises
``BlobTampered`` before a byte of it reaches PDFium or the browser.

Rendered pages are kept a short while in Django's cache (Redis in production), sealed with
AES-256-GCM under a key derived from the active storage master key, so no rendered health
document sits in clear in a cache that might be written to disk. A page missing from the cache
(expired, evicted, master key rotated) is rendered again on its own.
"""

import hashlib
import hmac
import io
import json
import logging
import mimetypes
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _

from apps.attachments import conf as storage_conf
from apps.attachments.services import blob_read_verified
from apps.audit.events import Event
from apps.audit.services import record
from apps.core.exceptions import ApplicationError
from apps.core.request_meta import RequestMeta
from apps.mailbox.models import Attachment

logger = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("preview_worker.py")
PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Types some senders give any file; the name then decides.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
CACHE_VERSION = 1
CACHE_KEY_LABEL = b"mssweb-preview-cache"
NONCE_BYTES = 12


class PreviewUnavailable(ApplicationError):
    """This attachment cannot be previewed; ``message`` says why, in words for the reader."""


@dataclass(frozen=True, slots=True)
class PreviewPage:
    number: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Preview:
    kind: str  # "pdf" or "image"
    pages: list[PreviewPage]
    total_pages: int
    content_type: str = "image/png"

    @property
    def truncated(self) -> bool:
        return self.total_pages > len(self.pages)


def preview_kind(*, content_type: str, filename: str) -> str | None:
    """The preview an attachment gets, from the type the sender announced (or its name when
    that type says nothing): ``"pdf"``, ``"image"``, or None (download only)."""
    content_type = (content_type or "").lower()
    if content_type in GENERIC_TYPES:
        content_type = mimetypes.guess_type(filename or "")[0] or ""
    if content_type in PDF_TYPES:
        return "pdf"
    if content_type in IMAGE_TYPES:
        return "image"
    return None


# --- Services -----------------------------------------------------------------------------------


def attachment_preview(*, attachment: Attachment) -> Preview:
    """What the preview page shows: the rendered pages of a PDF (rendering them now unless they
    are cached) or the size of an image. Raises ``PreviewUnavailable`` (to show to the reader)
    and ``BlobTampered`` (the stored object must not be used at all)."""
    kind = preview_kind(content_type=attachment.content_type, filename=attachment.filename)
    if kind == "image":
        with blob_read_verified(attachment.blob) as plaintext:
            content_type, width, height = _image_info(plaintext)
        return Preview(
            kind="image", pages=[PreviewPage(number=1, width=width, height=height)],
            total_pages=1, content_type=content_type,
        )  # fmt: skip
    if kind != "pdf":
        raise PreviewUnavailable(_("Aperçu impossible : ce type de fichier n'a pas d'aperçu."))
    manifest = _cache_get(attachment, "manifest")
    if manifest is None:
        manifest = _render_and_cache(attachment, first=0, count=settings.MAILBOX_PREVIEW_MAX_PAGES)
    else:
        manifest = json.loads(manifest)
    return Preview(
        kind="pdf",
        pages=[
            PreviewPage(number=number, width=width, height=height)
            for number, (width, height) in enumerate(manifest["pages"], start=1)
        ],
        total_pages=manifest["total"],
    )


def attachment_preview_page(*, attachment: Attachment, number: int) -> bytes:
    """The PNG of page ``number`` (from 1) of a PDF attachment, from the cache or rendered
    now. Raises ``PreviewUnavailable`` for a page that is not previewed."""
    if preview_kind(content_type=attachment.content_type, filename=attachment.filename) != "pdf":
        raise PreviewUnavailable(_("Aperçu impossible : ce fichier n'est pas un PDF."))
    if not 1 <= number <= settings.MAILBOX_PREVIEW_MAX_PAGES:
        raise PreviewUnavailable(_("Aperçu impossible : cette page n'est pas affichée."))
    image = _cache_get(attachment, f"page:{number}")
    if image is None:
        rendered = _render(attachment, first=number - 1, count=1)
        if not rendered.images:
            raise PreviewUnavailable(_("Aperçu impossible : cette page n'existe pas."))
        image = rendered.images[0]
        _cache_set(attachment, {f"page:{number}": image})
    return image


def attachment_preview_image(*, attachment: Attachment) -> tuple[BinaryIO, str]:
    """The verified plaintext of an image attachment, and the raster type its bytes prove
    (not the one the sender announced). Close the file (``FileResponse`` does)."""
    if preview_kind(content_type=attachment.content_type, filename=attachment.filename) != "image":
        raise PreviewUnavailable(_("Aperçu impossible : ce fichier n'est pas une image."))
    plaintext = blob_read_verified(attachment.blob)
    try:
        content_type, _width, _height = _image_info(plaintext)
        plaintext.seek(0)
    except BaseException:
        plaintext.close()
        raise
    return plaintext, content_type


def attachment_preview_record(*, user, attachment: Attachment, meta: RequestMeta | None) -> None:
    """A preview shows the content: audited as a download, marked as a preview."""
    record(
        event=Event.ATTACHMENT_DOWNLOADED, actor=user, target=attachment, meta=meta,
        extra={"preview": True},
    )  # fmt: skip


# --- Rendering in a separate process ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rendered:
    first: int
    total: int
    sizes: list[tuple[int, int]]
    images: list[bytes]


def _render_and_cache(attachment: Attachment, *, first: int, count: int) -> dict:
    rendered = _render(attachment, first=first, count=count)
    manifest = {"pages": rendered.sizes, "total": rendered.total}
    values = {
        f"page:{rendered.first + offset + 1}": image for offset, image in enumerate(rendered.images)
    }
    values["manifest"] = json.dumps(manifest).encode()
    _cache_set(attachment, values)
    return manifest


def _render(attachment: Attachment, *, first: int, count: int) -> _Rendered:
    with blob_read_verified(attachment.blob) as plaintext:
        data = plaintext.read()
    return pdf_render(data, first=first, count=count)


def worker_env() -> dict[str, str]:
    """The worker's whole environment: none of this process's secrets (database URL, keys)."""
    return {"LANG": "C.UTF-8", "PATH": os.defpath}


def pdf_render(data: bytes, *, first: int = 0, count: int = 1) -> _Rendered:
    """Pages ``first`` to ``first + count - 1`` (from 0) of the PDF ``data`` as PNGs, rendered
    by ``preview_worker.py`` in its own process. Raises ``PreviewUnavailable``."""
    command = [
        sys.executable, "-I", str(WORKER), str(first), str(count),
        str(settings.MAILBOX_PREVIEW_MAX_WIDTH), str(settings.MAILBOX_PREVIEW_MAX_PIXELS),
        str(settings.MAILBOX_PREVIEW_SCALE), str(settings.MAILBOX_PREVIEW_MAX_BYTES),
    ]  # fmt: skip
    started = time.monotonic()
    try:
        done = subprocess.run(  # noqa: S603 - fixed command, the document goes through stdin
            command, input=data, capture_output=True, check=False, close_fds=True,
            env=worker_env(),
            timeout=settings.MAILBOX_PREVIEW_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:  # run() has killed the worker
        logger.warning(
            "pdf preview timed out", extra={"seconds": round(time.monotonic() - started, 1)}
        )
        raise PreviewUnavailable(
            _("Aperçu impossible : le document est trop long à afficher.")
        ) from None
    header, _sep, body = done.stdout.partition(b"\n")
    try:
        result = json.loads(header) if done.returncode in (0, 2) else {}
    except ValueError:
        result = {}
    if result.get("error") == "encrypted":
        raise PreviewUnavailable(
            _("Aperçu impossible : le document est protégé par un mot de passe.")
        )
    if result.get("error") == "broken":
        raise PreviewUnavailable(_("Aperçu impossible : le fichier n'est pas un PDF lisible."))
    if done.returncode != 0 or "pages" not in result:
        logger.warning("pdf preview failed", extra={"returncode": done.returncode})
        raise PreviewUnavailable(
            _("Aperçu impossible : le document est trop complexe pour être affiché.")
        )
    sizes, images, offset = [], [], 0
    for width, height, size in result["pages"]:
        sizes.append((int(width), int(height)))
        images.append(body[offset : offset + size])
        offset += size
    if offset != len(body) or any(not image.startswith(PNG_SIGNATURE) for image in images):
        raise PreviewUnavailable(
            _("Aperçu impossible : le document est trop complexe pour être affiché.")
        )
    return _Rendered(first=result["first"], total=result["total"], sizes=sizes, images=images)


# --- The cache, sealed --------------------------------------------------------------------------


def _cache_key(attachment: Attachment, part: str) -> str:
    options = "|".join(
        str(getattr(settings, name))
        for name in ("MAILBOX_PREVIEW_SCALE", "MAILBOX_PREVIEW_MAX_WIDTH",
                     "MAILBOX_PREVIEW_MAX_PIXELS", "MAILBOX_PREVIEW_MAX_PAGES")
    )  # fmt: skip
    digest = hashlib.sha256(options.encode()).hexdigest()[:12]
    return f"mailbox:preview:{CACHE_VERSION}:{attachment.pk}:{attachment.blob_id}:{digest}:{part}"


def _cache_cipher(key_id: str) -> AESGCM | None:
    master = storage_conf.storage_keys().get(key_id)
    if master is None:
        return None
    return AESGCM(hmac.new(master, CACHE_KEY_LABEL, hashlib.sha256).digest())


def _cache_set(attachment: Attachment, values: dict[str, bytes]) -> None:
    key_id = storage_conf.active_key_id()
    cipher = _cache_cipher(key_id)
    sealed = {}
    for part, value in values.items():
        key = _cache_key(attachment, part)
        nonce = os.urandom(NONCE_BYTES)
        sealed[key] = (key_id, nonce + cipher.encrypt(nonce, value, key.encode()))
    cache.set_many(sealed, timeout=settings.MAILBOX_PREVIEW_CACHE_SECONDS)


def _cache_get(attachment: Attachment, part: str) -> bytes | None:
    key = _cache_key(attachment, part)
    entry = cache.get(key)
    if not (isinstance(entry, tuple) and len(entry) == 2):
        return None
    key_id, sealed = entry
    cipher = _cache_cipher(key_id)
    if cipher is None:
        return None
    try:
        return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], key.encode())
    except (InvalidTag, ValueError):
        return None  # rendered again, never served


# --- Raster images: the type and size their bytes prove -----------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOF = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)}
)
JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})


def _image_info(stream: BinaryIO) -> tuple[str, int, int]:
    """``(content type, width, height)`` of a PNG, JPEG, GIF or WebP image, read from its
    first bytes; ``PreviewUnavailable`` for anything else (SVG, HTML, a damaged image)."""
    head = stream.read(32)
    info = None
    if head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR":
        info = ("image/png", *_unpack(head[16:24], ">", 4))
    elif head[:6] in (b"GIF87a", b"GIF89a"):
        info = ("image/gif", *_unpack(head[6:10], "<", 2))
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        info = _webp_info(head)
    elif head[:2] == b"\xff\xd8":
        stream.seek(2)
        info = _jpeg_info(stream)
    if info is None or not (info[1] > 0 and info[2] > 0):
        raise PreviewUnavailable(_("Aperçu impossible : ce fichier n'est pas une image lisible."))
    return info


def _unpack(data: bytes, order: str, size: int) -> tuple[int, int]:
    if len(data) < 2 * size:
        return (0, 0)
    return (
        int.from_bytes(data[:size], "big" if order == ">" else "little"),
        int.from_bytes(data[size : 2 * size], "big" if order == ">" else "little"),
    )


def _webp_info(head: bytes) -> tuple[str, int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
    elif chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a" and len(head) >= 30:
        width = int.from_bytes(head[26:28], "little") & 0x3FFF
        height = int.from_bytes(head[28:30], "little") & 0x3FFF
    else:
        return None
    return ("image/webp", width, height)


def _jpeg_info(stream: BinaryIO) -> tuple[str, int, int] | None:
    """Walks the JPEG markers up to the frame header (SOFn), which holds the size."""
    for _segment in range(1000):
        byte = stream.read(1)
        if byte != b"\xff":
            return None
        marker = stream.read(1)
        while marker == b"\xff":  # fill bytes
            marker = stream.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in JPEG_NO_LENGTH:
            continue
        length_bytes = stream.read(2)
        if len(length_bytes) < 2:
            return None
        length = int.from_bytes(length_bytes, "big")
        if code in JPEG_SOF:
            frame = stream.read(5)
            if len(frame) < 5:
                return None
            height, width = _unpack(frame[1:5], ">", 2)
            return ("image/jpeg", width, height)
        if length < 2 or code == 0xDA:  # start of scan before any frame header
            return None
        stream.seek(length - 2, io.SEEK_CUR)
    return None
