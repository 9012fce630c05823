"""Attachment previews: PDFs rendered to images by PDFium in a boxed-in process, raster images
shown under the type their bytes prove; nothing runs, everything is audited once."""

import json
import re
import socket
import struct
import subprocess
import sys
import zlib
from email.message import EmailMessage

import pytest
from django.core.cache import cache
from django.urls import reverse

from apps.attachments.services import blob_storage
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.mailbox import preview, services
from apps.mailbox.models import Mailbox
from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
A4 = (595, 842)


def make_pdf(
    *, pages: int = 1, size: tuple[int, int] = A4, text: str = "Compte rendu", catalog: str = ""
) -> bytes:
    """A small, valid PDF (exact cross-reference table) with ``text`` in Helvetica on each
    page; ``catalog`` adds entries to the document catalog (an /OpenAction, say)."""
    kids = " ".join(f"{4 + 2 * n} 0 R" for n in range(pages))
    objects = [
        f"<< /Type /Catalog /Pages 2 0 R {catalog}>>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for n in range(pages):
        stream = f"BT /F1 24 Tf 72 720 Td ({text} - page {n + 1}) Tj ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {size[0]} {size[1]}] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * n} 0 R >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    return struct.unpack(">II", data[16:24])


def png_pixels(data: bytes) -> bytes:
    """The decompressed rows of one of our PNGs (a single IDAT, filter None)."""
    width, height = png_size(data)
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8 : start - 4])[0]
    raw = zlib.decompress(data[start : start + length])
    assert len(raw) == height * (1 + 3 * width)
    return raw


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(b"\x00" + b"\x10\x80\xf0" * width for _ in range(height))
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def deliver(user, filename: str, data: bytes, content_type: str):
    """A message with one attachment filed into ``user``'s inbox; returns the attachment."""
    mail = EmailMessage()
    mail["From"] = "Dr Bob Durand <bob@test.mssante.fr>"
    mail["To"] = user.email
    mail["Subject"] = "Résultats"
    mail.set_content("Ci-joint.")
    maintype, subtype = content_type.split("/")
    mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    message = services.message_deliver_raw(mailbox=Mailbox.objects.get(owner=user), raw=bytes(mail))
    return message.attachments.get()


def preview_url(attachment) -> str:
    return reverse("mailbox:attachment_preview", args=[attachment.pk])


def page_url(attachment, number: int) -> str:
    return reverse("mailbox:attachment_preview_page", args=[attachment.pk, number])


def preview_audits(user) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event=Event.ATTACHMENT_DOWNLOADED, actor=user))


# --- Rendering ----------------------------------------------------------------------------------


def test_pdf_pages_render_to_png_at_the_configured_scale():
    rendered = preview.pdf_render(make_pdf(pages=2), first=0, count=5)
    assert rendered.total == 2
    assert len(rendered.images) == 2
    # 1.5 pixels per point: an A4 page (595 x 842 pt) is 893 x 1263 pixels.
    assert rendered.sizes == [(893, 1263), (893, 1263)]
    for image, size in zip(rendered.images, rendered.sizes, strict=True):
        assert png_size(image) == size
    # The text was drawn: the page is not uniformly white.
    assert set(png_pixels(rendered.images[0])) - {0, 255}


def test_a_huge_page_is_scaled_down_to_the_width_and_pixel_caps(settings):
    settings.MAILBOX_PREVIEW_MAX_WIDTH = 1000
    settings.MAILBOX_PREVIEW_MAX_PIXELS = 500_000
    poster = preview.pdf_render(make_pdf(size=(14_000, 14_000)))
    width, height = poster.sizes[0]
    assert width <= 1000
    assert width * height <= 500_000
    wide = preview.pdf_render(make_pdf(size=(3000, 300)))
    assert wide.sizes[0][0] == 1000


def test_only_the_first_pages_are_rendered(settings):
    settings.MAILBOX_PREVIEW_MAX_PAGES = 3
    rendered = preview.pdf_render(make_pdf(pages=5), first=0, count=3)
    assert rendered.total == 5
    assert len(rendered.images) == 3
    last = preview.pdf_render(make_pdf(pages=5), first=4, count=1)
    assert (last.first, len(last.images)) == (4, 1)


@pytest.mark.parametrize(
    "data",
    [b"not a pdf at all", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog", b""],
    ids=["garbage", "truncated", "empty"],
)
def test_a_broken_pdf_gives_a_clear_message(data):
    with pytest.raises(preview.PreviewUnavailable) as caught:
        preview.pdf_render(data)
    assert caught.value.message == "Aperçu impossible : le fichier n'est pas un PDF lisible."


def test_a_worker_past_its_wall_clock_timeout_is_killed(settings):
    settings.MAILBOX_PREVIEW_TIMEOUT = 0.001  # less than the interpreter takes to start
    with pytest.raises(preview.PreviewUnavailable) as caught:
        preview.pdf_render(make_pdf())
    assert "trop long à afficher" in caught.value.message


def test_the_worker_is_boxed_in_before_it_reads_the_document():
    """The limits are the worker's own, set before parsing, and it is given no environment
    worth stealing: check both from inside a process started as ``pdf_render`` starts it."""
    probe = (
        "import resource, sys, os\n"
        f"sys.path.insert(0, {str(preview.WORKER.parent)!r})\n"
        "import preview_worker\n"
        "preview_worker.limit_resources()\n"
        "limits = (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE)\n"
        "print(*(resource.getrlimit(limit)[0] for limit in limits))\n"
        "print(' '.join(sorted(os.environ)))\n"
        "try:\n    bytearray(600 * 1024 * 1024)\nexcept MemoryError:\n    print('memory refused')\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, env=preview.worker_env(),
        check=True, timeout=30,
    )  # fmt: skip
    limits, environment, memory = done.stdout.decode().splitlines()
    assert limits == f"{512 * 1024 * 1024} 30 0"
    assert set(environment.split()) <= {"LANG", "PATH", "LC_CTYPE"}
    assert memory == "memory refused"


# --- The preview page and its images ------------------------------------------------------------


def test_pdf_preview_page_lists_page_images_and_is_audited_once(alice):
    attachment = deliver(alice, "compte rendu.pdf", make_pdf(pages=2), "application/pdf")
    client = client_for(alice)
    response = client.get(preview_url(attachment))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Aperçu — compte rendu.pdf" in html
    for number in (1, 2):
        assert (
            f'src="{page_url(attachment, number)}" width="893" height="1263" alt="Page {number}"'
            in html
        )
    assert 'loading="lazy"' in html
    assert reverse("mailbox:attachment", args=[attachment.pk]) in html
    assert reverse("mailbox:message", args=[attachment.message_id]) in html

    image = client.get(page_url(attachment, 2))
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    assert image["X-Content-Type-Options"] == "nosniff"
    assert image["Cache-Control"] == "private, no-store"
    assert image["Content-Security-Policy"].startswith("default-src 'none'")
    assert png_size(image.content) == (893, 1263)
    client.get(page_url(attachment, 1))

    audits = preview_audits(alice)
    assert len(audits) == 1
    assert audits[0].detail == {"preview": True}
    assert audits[0].target_id == str(attachment.pk)


def test_page_images_are_cached_sealed_and_rendered_again_when_evicted(alice):
    attachment = deliver(alice, "cr.pdf", make_pdf(pages=2), "application/pdf")
    client = client_for(alice)
    client.get(preview_url(attachment))
    key = preview._cache_key(attachment, "page:1")
    key_id, sealed = cache.get(key)
    cached = client.get(page_url(attachment, 1)).content
    assert PNG_SIGNATURE not in sealed  # the cache holds ciphertext only
    assert preview._cache_get(attachment, "page:1") == cached
    # A changed cache entry is never served: the page is rendered again.
    cache.set(key, (key_id, sealed[:-1] + bytes([sealed[-1] ^ 1])))
    assert client.get(page_url(attachment, 1)).content == cached
    cache.clear()
    again = client.get(page_url(attachment, 2))
    assert png_size(again.content) == (893, 1263)


def test_pdf_javascript_never_runs_and_the_response_carries_no_script(alice):
    # Were the document's script to run, it would call this listener.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    hostile = make_pdf(
        catalog="/OpenAction << /S /JavaScript /JS (app.alert\\('pwned'\\); "
        f"this.submitForm\\('http://127.0.0.1:{port}/steal'\\); "
        f"app.launchURL\\('http://127.0.0.1:{port}/launch'\\);) >> "
        "/Names << /JavaScript << /Names [(x) << /S /JavaScript /JS (app.alert\\(1\\)) >>] >> >> ",
        text="<script>alert(1)</script>",
    )
    attachment = deliver(alice, "piege.pdf", hostile, "application/pdf")
    client = client_for(alice)
    response = client.get(preview_url(attachment))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert" not in html
    for element in ("<object", "<embed", "<iframe"):
        assert element not in html
    assert len(re.findall(r"<script\b", html)) == html.count("<script src=")  # ours, no inline
    image = client.get(page_url(attachment, 1))
    assert image["Content-Type"] == "image/png"
    assert png_size(image.content) == (893, 1263)
    assert b"JavaScript" not in image.content
    assert b"<script" not in image.content
    with listener, pytest.raises(TimeoutError):
        listener.accept()


def test_a_broken_pdf_shows_the_message_and_a_download_link(alice):
    attachment = deliver(alice, "abime.pdf", b"%PDF-1.4\nrien de plus", "application/pdf")
    response = client_for(alice).get(preview_url(attachment))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Aperçu impossible : le fichier n&#x27;est pas un PDF lisible." in html
    assert reverse("mailbox:attachment", args=[attachment.pk]) in html
    assert '<img src="/messagerie/piece-jointe' not in html
    assert client_for(alice).get(page_url(attachment, 1)).status_code == 404
    assert not preview_audits(alice)


def test_an_encrypted_pdf_says_it_needs_a_password(alice):
    import pypdfium2.raw as pdfium_c

    assert pdfium_c.FPDF_ERR_PASSWORD == 4  # what the worker reports as "encrypted"
    # An RC4 /Encrypt dictionary whose user password is not empty: PDFium asks for it.
    pdf = make_pdf().replace(
        b"trailer\n<< ",
        b"trailer\n<< /Encrypt << /Filter /Standard /V 1 /R 2 /Length 40 /P -4 "
        b"/O <"
        + b"11" * 32
        + b"> /U <"
        + b"22" * 32
        + b"> >> /ID [<00112233445566778899aabbccddeeff> "
        b"<00112233445566778899aabbccddeeff>] ",
    )
    with pytest.raises(preview.PreviewUnavailable) as caught:
        preview.pdf_render(pdf)
    assert "protégé par un mot de passe" in caught.value.message


def test_a_tampered_blob_is_refused(alice):
    attachment = deliver(alice, "cr.pdf", make_pdf(), "application/pdf")
    path = blob_storage().path(attachment.blob.name)
    with open(path, "r+b") as stored:
        stored.seek(40)
        byte = stored.read(1)
        stored.seek(40)
        stored.write(bytes([byte[0] ^ 0x01]))
    client = client_for(alice)
    response = client.get(preview_url(attachment))
    assert response.status_code == 404
    assert "endommagée ou a été modifiée" in response.content.decode()
    assert client.get(page_url(attachment, 1)).status_code == 404
    assert not preview_audits(alice)


def test_someone_elses_attachment_is_not_found(alice):
    attachment = deliver(alice, "cr.pdf", make_pdf(), "application/pdf")
    image = deliver(alice, "photo.png", tiny_png(), "image/png")
    client_for(alice).get(preview_url(attachment))  # rendered and cached for Alice
    eve = client_for(make_user(first_name="Eve", last_name="Curieuse"))
    assert eve.get(preview_url(attachment)).status_code == 404
    assert eve.get(page_url(attachment, 1)).status_code == 404
    assert eve.get(preview_url(image)).status_code == 404
    assert eve.get(reverse("mailbox:attachment_preview_image", args=[image.pk])).status_code == 404


def test_a_timeout_while_previewing_shows_a_clear_message(alice, settings):
    attachment = deliver(alice, "cr.pdf", make_pdf(), "application/pdf")
    settings.MAILBOX_PREVIEW_TIMEOUT = 0.001
    response = client_for(alice).get(preview_url(attachment))
    assert response.status_code == 200
    assert "Aperçu impossible : le document est trop long à afficher." in response.content.decode()


def test_more_pages_than_shown_says_so(alice, settings):
    settings.MAILBOX_PREVIEW_MAX_PAGES = 2
    attachment = deliver(alice, "long.pdf", make_pdf(pages=4), "application/pdf")
    client = client_for(alice)
    html = client.get(preview_url(attachment)).content.decode()
    assert "Seules les 2 premières pages sur 4 sont affichées" in html
    assert client.get(page_url(attachment, 3)).status_code == 404


# --- Images -------------------------------------------------------------------------------------


def test_image_preview_shows_the_image_under_its_proven_type(alice):
    attachment = deliver(alice, "radio.png", tiny_png(3, 2), "image/png")
    client = client_for(alice)
    html = client.get(preview_url(attachment)).content.decode()
    src = reverse("mailbox:attachment_preview_image", args=[attachment.pk])
    assert f'src="{src}" width="3" height="2" alt="radio.png"' in html
    image = client.get(src)
    assert image["Content-Type"] == "image/png"
    assert image["X-Content-Type-Options"] == "nosniff"
    assert image["Content-Disposition"].startswith("inline;")
    assert b"".join(image.streaming_content) == tiny_png(3, 2)
    assert [a.detail for a in preview_audits(alice)] == [{"preview": True}]


def test_an_image_that_is_not_what_it_claims_is_not_shown(alice):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    disguised = deliver(alice, "photo.png", svg, "image/png")
    client = client_for(alice)
    response = client.get(preview_url(disguised))
    assert (
        "Aperçu impossible : ce fichier n&#x27;est pas une image lisible."
        in response.content.decode()
    )
    src = reverse("mailbox:attachment_preview_image", args=[disguised.pk])
    assert client.get(src).status_code == 404


def test_svg_has_no_preview_and_no_preview_link(alice):
    svg = deliver(
        alice, "schema.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"
    )
    pdf = deliver(alice, "cr.pdf", make_pdf(), "application/pdf")
    pdf.filename = "cr <b>1</b>.pdf"  # as a careless importer might have stored it
    pdf.save(update_fields=["filename"])
    client = client_for(alice)
    assert client.get(preview_url(svg)).status_code == 404
    page = client.get(reverse("mailbox:message", args=[svg.message_id])).content.decode()
    assert preview_url(svg) not in page
    page = client.get(reverse("mailbox:message", args=[pdf.message_id])).content.decode()
    assert f'href="{preview_url(pdf)}"' in page
    assert "<b>1</b>" not in page
    assert 'Aperçu<span class="visually-hidden"> de cr &lt;b&gt;1&lt;/b&gt;.pdf</span>' in page
    assert "<b>1</b>" not in client.get(preview_url(pdf)).content.decode()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GIF89a\x05\x00\x07\x00" + b"\x00" * 22, ("image/gif", 5, 7)),
        (b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x04\x00\x00",
         ("image/webp", 10, 5)),
        (b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f" + (9 | (4 << 14)).to_bytes(4, "little")
         + b"\x00" * 7, ("image/webp", 10, 5)),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 9 + b"\xff\xc0\x00\x11\x08\x00\x02\x00\x03"
         + b"\x00" * 12, ("image/jpeg", 3, 2)),
    ],
    ids=["gif", "webp-extended", "webp-lossless", "jpeg"],
)  # fmt: skip
def test_raster_types_and_sizes_are_read_from_the_bytes(head, expected):
    import io

    assert preview._image_info(io.BytesIO(head)) == expected


def test_preview_kind_follows_the_announced_type_or_the_name():
    assert preview.preview_kind(content_type="application/pdf", filename="x") == "pdf"
    assert preview.preview_kind(content_type="application/octet-stream", filename="a.PDF") == "pdf"
    assert preview.preview_kind(content_type="image/jpeg", filename="x") == "image"
    assert preview.preview_kind(content_type="image/svg+xml", filename="x.svg") is None
    assert preview.preview_kind(content_type="text/html", filename="x.pdf") is None


def test_worker_protocol_header_is_json():
    """The worker's first line is the JSON header, the PNGs follow (checked end to end)."""
    done = subprocess.run(
        [sys.executable, "-I", str(preview.WORKER), "0", "1", "1400", "4000000", "1.5", "1000000"],
        input=make_pdf(), capture_output=True, env={}, check=True, timeout=30,
    )  # fmt: skip
    header, _sep, body = done.stdout.partition(b"\n")
    assert json.loads(header) == {"first": 0, "pages": [[893, 1263, len(body)]], "total": 1}
    assert body.startswith(PNG_SIGNATURE)
