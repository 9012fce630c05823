"""Renders the pages of an untrusted PDF to PNG, in a process of its own (``preview.py`` starts
it with ``python -I preview_worker.py``).

A hostile PDF is parsed here, by PDFium (C++), so this process is kept small and boxed in: it
imports no part of the project and no Django, receives no secret (an empty environment), limits
its own address space, CPU time, open files and output file size before it reads a byte of the
document, may not start processes, and is killed by its parent after a wall-clock timeout.

PDFium is used without its form environment (``init_forms`` is never called), so no PDF
JavaScript or XFA can run: actions such as ``/OpenAction << /S /JavaScript >>`` are ignored, and
page content is drawn as it is.

Protocol: the document arrives on stdin; the arguments are ``first count max_width max_pixels
scale max_bytes`` (render ``count`` pages from page index ``first``, stopping early once the PNGs
reach ``max_bytes``). On success the process writes one JSON line ``{"first": first, "pages":
[[width, height, size], ...], "total": n}`` to stdout followed by the PNGs of those pages, one
after the other (``size`` bytes each), and exits 0. A document PDFium refuses gives
``{"error": "encrypted" | "broken"}`` and exit status 2. Anything else (a crash, a limit
reached) ends the process otherwise.
"""

import json
import math
import resource
import struct
import sys
import zlib

MEMORY_LIMIT = 512 * 1024 * 1024
CPU_SECONDS = 30
OPEN_FILES = 16


def limit_resources(*, memory: int = MEMORY_LIMIT, cpu: int = CPU_SECONDS) -> None:
    """Bounds this process before it touches the document (hard limits: no way back)."""
    for limit, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_NOFILE, OPEN_FILES),
        (resource.RLIMIT_FSIZE, 0),  # no file may be written, so no plaintext on disk
        (resource.RLIMIT_CORE, 0),  # nor a core dump holding the document
        (resource.RLIMIT_NPROC, 0),  # no new process
    ):
        resource.setrlimit(limit, (value, value))


def png(*, width: int, height: int, stride: int, rgb: bytes) -> bytes:
    """An RGB PNG (8 bits per channel, filter "None" on each row) of a packed pixel buffer."""
    row = width * 3
    raw = b"".join(
        b"\x00" + rgb[y * stride : y * stride + row] for y in range(height)
    )  # fmt: skip

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def page_scale(
    width: float, height: float, *, scale: float, max_width: int, max_pixels: int
) -> float:
    """``scale``, reduced so that the page is at most ``max_width`` pixels wide and
    ``max_pixels`` pixels in all (a 5-metre poster page does not make a 2-gigapixel image)."""
    width, height = max(width, 1.0), max(height, 1.0)
    factor = min(scale, max_width / width, math.sqrt(max_pixels / (width * height)))
    # PDFium rounds the bitmap's sides up: step down until the rounded image fits too.
    while factor > 0.001 and (
        math.ceil(width * factor) > max_width
        or math.ceil(width * factor) * math.ceil(height * factor) > max_pixels
    ):
        factor *= 0.995
    return factor


def render(
    data: bytes, *, first: int, count: int, max_width: int, max_pixels: int, scale: float,
    max_bytes: int,
) -> tuple[dict, list[bytes]]:  # fmt: skip
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        encrypted = getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD
        return {"error": "encrypted" if encrypted else "broken"}, []
    total = len(document)
    if total == 0:
        return {"error": "broken"}, []
    sizes: list[list[int]] = []
    images: list[bytes] = []
    budget = max_bytes
    for index in range(first, min(total, first + count)):
        page = document[index]
        factor = page_scale(
            *page.get_size(), scale=scale, max_width=max_width, max_pixels=max_pixels
        )
        bitmap = page.render(
            scale=factor, may_draw_forms=False, rev_byteorder=True, draw_annots=True
        )
        image = png(
            width=bitmap.width, height=bitmap.height, stride=bitmap.stride,
            rgb=bytes(bitmap.buffer),
        )  # fmt: skip
        page.close()
        budget -= len(image)
        if budget < 0 and images:
            break  # the pages rendered so far are shown; the reader downloads the rest
        sizes.append([bitmap.width, bitmap.height, len(image)])
        images.append(image)
    return {"first": first, "pages": sizes, "total": total}, images


def main(argv: list[str]) -> int:
    first, count, max_width, max_pixels = (int(value) for value in argv[:4])
    scale, max_bytes = float(argv[4]), int(argv[5])
    limit_resources()
    data = sys.stdin.buffer.read()
    header, images = render(
        data, first=first, count=count, max_width=max_width, max_pixels=max_pixels,
        scale=scale, max_bytes=max_bytes,
    )  # fmt: skip
    out = sys.stdout.buffer
    out.write(json.dumps(header).encode() + b"\n")
    for image in images:
        out.write(image)
    out.flush()
    return 2 if "error" in header else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
