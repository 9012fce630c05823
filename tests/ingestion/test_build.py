import io
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from apps.core.exceptions import ApplicationError
from apps.ingestion.build import (
    MessageBuildError,
    OutgoingAttachment,
    build_message,
    forward_subject,
    make_message_id,
    quote_text,
    reply_subject,
)
from apps.ingestion.parse import parse_message

SENDER = ("Dr Claire Morél", "claire.morel@chirurgien-dentiste.mssante.fr")
DATE = datetime(2025, 3, 10, 9, 15, tzinfo=timezone(timedelta(hours=1)))
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


def build(**overrides) -> bytes:
    fields = {
        "from_": SENDER,
        "to": [("Dr Jacques Bideault, radiologue", "jacques.bideault@medecin.mssante.fr")],
        "cc": [("Secrétariat", "secretariat@centre-ambroise.mssante.fr")],
        "bcc": [("Caché", "cache@medecin.mssante.fr")],
        "subject": "Compte rendu — échographie à 3 mois",
        "text": "Bonjour,\r\nligne deux\rligne trois\nÀ bientôt.\n" + "x" * 2000 + "\n",
        "message_id": "abc.123@chirurgien-dentiste.mssante.fr",
        "date": DATE,
    }
    fields.update(overrides)
    return build_message(**fields)


def assert_wire_clean(raw: bytes) -> None:
    assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF"
    assert re.search(rb"\r(?!\n)", raw) is None, "bare CR"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    raw.decode("ascii")  # 7-bit: UTF-8 travels encoded (RFC 2047, quoted-printable, base64)


def test_round_trip_gives_back_the_fields():
    raw = build(
        html="<p>Bonjour <b>confrère</b></p>",
        attachments=[
            OutgoingAttachment("Compte-rendu échographie.pdf", "application/pdf", PDF),
            OutgoingAttachment("notes.txt", "text/plain", lambda: io.BytesIO(b"notes\n")),
        ],
        in_reply_to="parent@medecin.mssante.fr",
        references=["root@medecin.mssante.fr", "parent@medecin.mssante.fr"],
        urgent=True,
        read_receipt_to="claire.morel@chirurgien-dentiste.mssante.fr",
        extra_headers={"X-MSS-INS": "O", "X-MSS-CODECDA": "11488-4"},
    )
    assert_wire_clean(raw)
    parsed = parse_message(raw)
    assert parsed.defects == ()
    assert parsed.from_.to_dict() == {"name": SENDER[0], "address": SENDER[1]}
    assert [(a.name, a.address) for a in parsed.to] == [
        ("Dr Jacques Bideault, radiologue", "jacques.bideault@medecin.mssante.fr")
    ]
    assert parsed.cc[0].name == "Secrétariat"
    assert parsed.bcc == ()
    assert parsed.subject == "Compte rendu — échographie à 3 mois"
    assert parsed.message_id == "abc.123@chirurgien-dentiste.mssante.fr"
    assert parsed.in_reply_to == "parent@medecin.mssante.fr"
    assert parsed.references == ("root@medecin.mssante.fr", "parent@medecin.mssante.fr")
    assert parsed.date == DATE
    assert parsed.text == "Bonjour,\nligne deux\nligne trois\nÀ bientôt.\n" + "x" * 2000 + "\n"
    assert parsed.html == "<p>Bonjour <b>confrère</b></p>\n"
    assert parsed.importance == "urgent"
    assert parsed.disposition_notification_to == "claire.morel@chirurgien-dentiste.mssante.fr"
    assert parsed.x_mss_ins == "O"
    assert parsed.x_mss_codecda == ("11488-4",)
    assert [(a.filename, a.content_type, a.payload) for a in parsed.attachments] == [
        ("Compte-rendu échographie.pdf", "application/pdf", PDF),
        ("notes.txt", "text/plain", b"notes\n"),
    ]


def test_headers_and_structure_on_the_wire():
    raw = build(html="<p>h</p>", attachments=[OutgoingAttachment("é.pdf", "application/pdf", PDF)])
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"MIME-Version: 1.0\r\n" in head
    assert b"Message-ID: <abc.123@chirurgien-dentiste.mssante.fr>" in head
    assert b"Date: Mon, 10 Mar 2025 09:15:00 +0100" in head
    assert b"Content-Type: multipart/mixed" in head
    assert b"=?utf-8?" in head  # non-ASCII subject and names encoded (RFC 2047)
    assert b"Bcc" not in raw
    assert b"cache@medecin" not in raw
    assert b"Importance" not in head
    assert b"Disposition-Notification-To" not in head
    assert b"filename*=utf-8''%C3%A9.pdf" in body  # RFC 2231
    assert raw.count(b"MIME-Version") == 1
    # text first, then html, in the alternative
    assert body.index(b"text/plain") < body.index(b"text/html") < body.index(b"application/pdf")


def test_plain_text_only_message_is_not_multipart():
    raw = build(cc=(), bcc=())
    assert_wire_clean(raw)
    assert b'Content-Type: text/plain; charset="utf-8"' in raw
    assert b"multipart" not in raw


def test_urgent_headers():
    raw = build(urgent=True)
    assert b"Importance: high\r\n" in raw
    assert b"X-Priority: 1 (Highest)\r\n" in raw


def test_inline_images_go_in_a_related_part_with_their_content_id():
    raw = build(
        html='<p><img src="cid:logo@cabinet"></p>',
        attachments=[OutgoingAttachment("logo.png", "image/png", b"\x89PNG...", "logo@cabinet")],
    )
    assert b"multipart/related" in raw
    parsed = parse_message(raw)
    (image,) = parsed.attachments
    assert (image.disposition, image.content_id) == ("inline", "logo@cabinet")


def test_forwarded_7bit_message_is_attached_as_message_rfc822():
    inner = (
        b"From: a@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
        b"Message-ID: <in@example.org>\r\n\r\nx\r\n"
    )
    raw = build(attachments=[OutgoingAttachment("message.eml", "message/rfc822", inner)])
    assert_wire_clean(raw)
    assert b"Content-Type: message/rfc822" in raw
    (attachment,) = parse_message(raw).attachments
    assert attachment.content_type == "message/rfc822"
    assert parse_message(attachment.payload).message_id == "in@example.org"


def test_forwarded_8bit_message_travels_as_a_base64_file():
    inner = (
        b"From: a@example.org\r\nSubject: caf\xc3\xa9\r\n"
        b"Message-ID: <in@example.org>\r\n\r\n\xc3\xa9\r\n"
    )
    raw = build(attachments=[OutgoingAttachment("message.eml", "message/rfc822", inner)])
    assert_wire_clean(raw)
    (attachment,) = parse_message(raw).attachments
    assert (attachment.content_type, attachment.filename) == (
        "application/octet-stream",
        "message.eml",
    )
    assert attachment.payload == inner


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Objet\r\nBcc: victime@example.org"},
        {"subject": "Objet\nX-Injected: 1"},
        {"from_": ("Nom\r\nBcc: x@example.org", "claire.morel@chirurgien-dentiste.mssante.fr")},
        {"to": [("Nom\nX: y", "a@example.org")]},
        {"to": [("", "a@example.org\r\nBcc: x@example.org")]},
        {"to": [("", "pas une adresse")]},
        {"to": [("", "a@exa mple.org")]},
        {"cc": [("", "a@b@example.org")]},
        {"bcc": [("", "x@example.org\r\n")]},
        {"message_id": "abc@example.org>\r\nBcc: <x@example.org"},
        {"in_reply_to": "x y@example.org"},
        {"references": ["ok@example.org", "bad\n@example.org"]},
        {"read_receipt_to": "a@example.org\r\nBcc: x@example.org"},
        {"extra_headers": {"X-MSS-MES": "FIN\r\nBcc: x@example.org"}},
        {"extra_headers": {"Bcc": "x@example.org"}},
        {"extra_headers": {"X Bad": "1"}},
        {"attachments": [OutgoingAttachment("a\r\nb.pdf", "application/pdf", b"x")]},
        {"date": datetime(2025, 3, 10, 9, 15)},  # noqa: DTZ001 - naive on purpose
        {"to": [], "cc": [], "bcc": []},
    ],
)
def test_header_injection_and_invalid_values_are_refused(overrides):
    with pytest.raises(MessageBuildError) as excinfo:
        build(**overrides)
    assert isinstance(excinfo.value, ApplicationError)


def test_make_message_id():
    first = make_message_id("chirurgien-dentiste.mssante.fr")
    second = make_message_id("chirurgien-dentiste.mssante.fr")
    assert first != second
    assert re.fullmatch(r"[0-9a-f]{32}\.\d{10}@chirurgien-dentiste\.mssante\.fr", first)
    with pytest.raises(MessageBuildError):
        make_message_id("bad domain>")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Compte rendu", "Re: Compte rendu"),
        ("Re: Compte rendu", "Re: Compte rendu"),
        ("RE : Compte rendu", "RE : Compte rendu"),
        ("Re[2]: Compte rendu", "Re[2]: Compte rendu"),
        ("Fwd: Compte rendu", "Re: Fwd: Compte rendu"),
        ("  Compte\r\n rendu ", "Re: Compte rendu"),
    ],
)
def test_reply_subject(subject, expected):
    assert reply_subject(subject) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Compte rendu", "Fwd: Compte rendu"),
        ("Fwd: Compte rendu", "Fwd: Compte rendu"),
        ("TR : Compte rendu", "TR : Compte rendu"),
        ("Fw: Compte rendu", "Fw: Compte rendu"),
        ("Re: Compte rendu", "Fwd: Re: Compte rendu"),
    ],
)
def test_forward_subject(subject, expected):
    assert forward_subject(subject) == expected


def test_quote_text():
    quoted = quote_text(
        "Bonjour,\r\n\r\n> plus ancien\nFin\n",
        "Dr Jacques Bideault",
        datetime(2021, 1, 8, 10, 22, tzinfo=UTC),
    )
    assert quoted == (
        "Le 8 janvier 2021 à 11:22, Dr Jacques Bideault a écrit :\n"
        "> Bonjour,\n"
        ">\n"
        ">> plus ancien\n"
        "> Fin"
    )
    assert quote_text("x", "A", None) == "A a écrit :\n> x"


# --- A body written with formatting: text/plain and text/html alternatives (compose editor) ---


def _structure(part, depth=0) -> list[str]:
    lines = [f"{'  ' * depth}{part.get_content_type()}"]
    if part.is_multipart():
        for sub in part.iter_parts():
            lines += _structure(sub, depth + 1)
    return lines


def test_formatted_body_is_a_multipart_alternative_text_first():
    from email import message_from_bytes, policy

    html = "<p>Bonjour <strong>confrère</strong>,</p><ul><li>radio</li></ul>" + "<p>é</p>" * 400
    raw = build(cc=(), bcc=(), text="Bonjour confrère,\n\n- radio\n", html=html)
    assert_wire_clean(raw)  # CRLF only, lines ≤ 998, 7-bit even with a long UTF-8 HTML line
    message = message_from_bytes(raw, policy=policy.default)
    assert _structure(message) == ["multipart/alternative", "  text/plain", "  text/html"]
    text_part, html_part = message.iter_parts()
    assert text_part.get_content_charset() == html_part.get_content_charset() == "utf-8"
    parsed = parse_message(raw)
    assert parsed.defects == ()
    assert parsed.text == "Bonjour confrère,\n\n- radio\n"
    assert parsed.html == html + "\n"
    assert raw.count(b"MIME-Version") == 1


def test_formatted_body_with_attachments_nests_the_alternative_in_mixed():
    from email import message_from_bytes, policy

    raw = build(
        html="<p><em>voir</em> pièce jointe</p>",
        text="voir pièce jointe\n",
        attachments=[
            OutgoingAttachment("radio.pdf", "application/pdf", PDF),
            OutgoingAttachment("photo.jpg", "image/jpeg", b"\xff\xd8\xff" + bytes(300)),
        ],
    )
    assert_wire_clean(raw)
    message = message_from_bytes(raw, policy=policy.default)
    assert _structure(message) == [
        "multipart/mixed",
        "  multipart/alternative",
        "    text/plain",
        "    text/html",
        "  application/pdf",
        "  image/jpeg",
    ]
    parsed = parse_message(raw)
    assert parsed.text == "voir pièce jointe\n"
    assert parsed.html == "<p><em>voir</em> pièce jointe</p>\n"
    assert [a.filename for a in parsed.attachments] == ["radio.pdf", "photo.jpg"]


def test_bare_newlines_in_the_html_become_crlf():
    raw = build(cc=(), bcc=(), html="<p>a</p>\n<p>b</p>\r<p>c</p>\r\n")
    assert_wire_clean(raw)
    assert parse_message(raw).html == "<p>a</p>\n<p>b</p>\n<p>c</p>\n"
