import hashlib
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from apps.ingestion import parse
from apps.ingestion.parse import display_subject, parse_message, safe_filename

FIXTURES = Path(__file__).parent / "fixtures"


def message(headers: str, body: str = "Corps.\r\n") -> bytes:
    return (headers.strip("\n").replace("\n", "\r\n") + "\r\n\r\n" + body).encode("utf-8")


def test_xdm_report_exposes_the_structured_document_and_hides_the_subject_prefix():
    parsed = parse_message((FIXTURES / "xdm-report.eml").read_bytes())
    assert parsed.has_xdm
    assert parsed.subject.startswith("XDM/1.0/DDM+CR d’imagerie médicale")
    assert parsed.display_subject == "CR d’imagerie médicale PAT-TROIS DOMINIQUE 28/03/1979"
    assert parsed.x_mss_codecda == ("18748-4",)
    assert parsed.x_mss_ins == "O"
    assert parsed.disposition_notification_to == "jacques.bideault@medecin.mssante.fr"
    zip_part = next(a for a in parsed.attachments if a.filename == "IHE_XDM.ZIP")
    assert zip_part.payload[:2] == b"PK"
    assert zip_part.sha256 == hashlib.sha256(zip_part.payload).hexdigest()
    assert "payload" not in zip_part.to_dict()


@pytest.mark.parametrize(
    ("subject", "shown"),
    [
        ("XDM/1.0/DDM+CR biologie DUPONT Marie 01/02/1960", "CR biologie DUPONT Marie 01/02/1960"),
        ("xdm/1.0/ddm+ CR", "CR"),
        ("Re: XDM/1.0/DDM+CR", "Re: CR"),
        ("Pas de XDM/1.0/DDM+ ici", "Pas de XDM/1.0/DDM+ ici"),
    ],
)
def test_display_subject_hides_only_a_leading_xdm_prefix(subject, shown):
    assert display_subject(subject) == shown


@pytest.mark.parametrize(
    ("header", "importance"),
    [
        ("X-Priority: 1", "urgent"),
        ("X-Priority: 1 (Highest)", "urgent"),
        ("X-Priority: 2 (High)", "urgent"),
        ("X-Priority: 3 (Normal)", "normal"),
        ("X-Priority: 10", "normal"),
        ("Importance: High", "urgent"),
        ("Importance: low", "normal"),
        ("Priority: urgent", "urgent"),
        ("Priority: normal", "normal"),
    ],
)
def test_importance_follows_the_usual_headers(header, importance):
    parsed = parse_message(message(f"From: a@example.org\n{header}"))
    assert parsed.importance == importance
    assert parsed.urgent is (importance == "urgent")


def test_addresses_keep_the_local_part_and_lower_case_the_domain():
    parsed = parse_message(
        message(
            'From: "Morel, Claire" <Claire.Morel@Chirurgien-Dentiste.MSSANTE.fr>\n'
            "To: A <a@Example.ORG>, b@example.org\n"
            "Bcc: hidden@Example.org\n"
            "Sender: =?utf-8?q?Secr=C3=A9tariat?= <sec@Example.org>"
        )
    )
    assert parsed.from_.to_dict() == {
        "name": "Morel, Claire",
        "address": "Claire.Morel@chirurgien-dentiste.mssante.fr",
    }
    assert [a.address for a in parsed.to] == ["a@example.org", "b@example.org"]
    assert parsed.bcc[0].address == "hidden@example.org"
    assert parsed.sender.name == "Secrétariat"


def test_malformed_address_lists_keep_what_can_be_read_and_say_what_could_not():
    parsed = parse_message(message("From: a@example.org\nTo: ok@example.org, , nobody, @@"))
    assert [a.address for a in parsed.to] == ["ok@example.org"]
    assert "header to: invalid address skipped" in parsed.defects


def test_dates_are_aware_utc_and_unparsable_dates_are_none():
    parsed = parse_message(message("Date: Fri, 08 Jan 2021 11:22:00 +0100"))
    assert parsed.date == datetime(2021, 1, 8, 10, 22, tzinfo=UTC)
    assert parse_message(message("Date: Fri, 08 Jan 2021 11:22:00 -0000")).date.tzinfo == UTC
    broken = parse_message(message("Date: le 8 janvier"))
    assert broken.date is None
    assert "header date: InvalidDateDefect" in broken.defects


def test_message_ids_lose_their_angle_brackets_and_missing_ones_are_none():
    parsed = parse_message(
        message(
            "Message-ID: <abc@example.org>\n"
            "In-Reply-To: <p1@example.org> (message de Jean)\n"
            "References: <p0@example.org>\n <p1@example.org>"
        )
    )
    assert parsed.message_id == "abc@example.org"
    assert parsed.in_reply_to == "p1@example.org"
    assert parsed.references == ("p0@example.org", "p1@example.org")
    assert parse_message(message("Subject: sans id")).message_id is None


def test_html_only_message_gets_a_text_version_and_keeps_its_raw_html():
    parsed = parse_message((FIXTURES / "html-newsletter-remote-images.eml").read_bytes())
    assert "<script>" in parsed.html  # not sanitised here: the caller does it
    assert "Nouveautés de mars" in parsed.text
    assert "document.location" not in parsed.text
    assert "- Agenda partagé" in parsed.text


def test_inline_image_of_a_related_html_body_is_an_inline_attachment_with_its_content_id():
    parsed = parse_message((FIXTURES / "alternative-inline-cid.eml").read_bytes())
    assert parsed.text.startswith("Voici l'image")
    assert 'src="cid:radio.panoramique@medecin.mssante.fr"' in parsed.html
    (image,) = parsed.attachments
    assert (image.disposition, image.content_id) == (
        "inline",
        "radio.panoramique@medecin.mssante.fr",
    )
    assert image.payload.startswith(b"\x89PNG")


def test_rfc2231_and_rfc2047_filenames_are_decoded_and_made_safe():
    parsed = parse_message((FIXTURES / "attachments-rfc2231-rfc2047.eml").read_bytes())
    names = [a.filename for a in parsed.attachments]
    assert names == [
        "Compte-rendu échographie cardiaque.pdf",
        "Ordonnance du Dr Müller.pdf",
        "_.._etc_passwd",
        "piece-jointe-4.pdf",
    ]


def test_forwarded_message_is_one_attachment_named_message_eml():
    parsed = parse_message((FIXTURES / "forwarded-rfc822.eml").read_bytes())
    (forwarded,) = parsed.attachments
    assert (forwarded.filename, forwarded.content_type) == ("message.eml", "message/rfc822")
    inner = parse_message(forwarded.payload)
    assert inner.message_id == "inner-1@medecin.mssante.fr"
    assert inner.attachments[0].filename == "radio.png"
    assert parsed.text.startswith("Pour classement")  # not the inner message's text


def test_dsn_is_recognised_with_its_failed_recipient_and_original_message():
    parsed = parse_message((FIXTURES / "dsn.eml").read_bytes())
    assert parsed.is_report == "dsn"
    assert parsed.report.original_message_id == "orig-42@chirurgien-dentiste.mssante.fr"
    assert parsed.report.original_envelope_id == "env-7f3a9c"
    (entry,) = parsed.report.entries
    assert (entry.final_recipient, entry.action, entry.status) == (
        "inconnu@medecin.mssante.fr",
        "failed",
        "5.1.1",
    )
    assert all(a.content_type != "message/delivery-status" for a in parsed.attachments)


def test_mdn_is_recognised_with_its_disposition():
    parsed = parse_message((FIXTURES / "mdn.eml").read_bytes())
    assert parsed.is_report == "mdn"
    assert parsed.report.original_message_id == "orig-43@chirurgien-dentiste.mssante.fr"
    assert parsed.report.entries[0].disposition.endswith("displayed")


def test_latin1_without_charset_is_decoded_as_latin1_family():
    parsed = parse_message((FIXTURES / "latin1-no-charset.eml").read_bytes())
    assert parsed.subject == "Réponse ordonnance"
    assert parsed.from_.name == "Jean-François Léger"
    assert "délivrée à la patiente" in parsed.text
    assert "12 €" in parsed.text  # 0x80 is the euro sign in Windows-1252


def test_patient_headers_are_read():
    parsed = parse_message((FIXTURES / "patient-headers.eml").read_bytes())
    assert parsed.x_mss_ins == "O"
    assert parsed.x_mss_codecda == ("11488-4", "34133-9")
    assert parsed.x_mss_mes == "FIN"
    assert parsed.x_mss_nil == "LOGICIEL-DENTAIRE/2.1/REF-0042"
    assert parsed.to[0].address == "162018885045327@patient.mssante.fr"


def test_unexpected_ins_flag_is_dropped_with_a_defect():
    parsed = parse_message(message("X-MSS-INS: peut-etre"))
    assert parsed.x_mss_ins is None
    assert "header x-mss-ins: unexpected value" in parsed.defects


def test_malformed_mime_is_read_as_far_as_possible():
    parsed = parse_message((FIXTURES / "malformed-mime.eml").read_bytes())
    assert parsed.text.startswith("Café crème")  # unknown charset: Windows-1252 fallback
    assert "never closed" in parsed.html
    assert "message: CloseBoundaryNotFoundDefect" in parsed.defects
    assert "text body: unknown charset" in parsed.defects
    assert parsed.attachments[0].payload == b"Hello world"


def test_nul_characters_never_reach_the_text():
    parsed = parse_message((FIXTURES / "malformed-headers.eml").read_bytes())
    assert "\x00" not in parsed.text
    assert "Body é" in parsed.text


@pytest.mark.parametrize("seed", range(30))
def test_garbage_never_raises(seed):
    rng = random.Random(seed)
    raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3000)))
    if seed % 3 == 0:  # garbage after a plausible header block
        raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" + raw
    parsed = parse_message(raw)
    json.dumps(parsed.to_dict())


def test_empty_input_gives_an_empty_message():
    parsed = parse_message(b"")
    assert (parsed.subject, parsed.text, parsed.attachments, parsed.from_) == ("", "", (), None)


def test_part_count_is_limited(monkeypatch):
    monkeypatch.setattr(parse, "MAX_PARTS", 10)
    body = "".join(
        f"--b\r\nContent-Type: application/octet-stream\r\n\r\n{n}\r\n" for n in range(50)
    )
    parsed = parse_message(message("Content-Type: multipart/mixed; boundary=b", body + "--b--"))
    assert len(parsed.attachments) == 9  # the top-level multipart counts as one part
    assert "message: more than 10 parts, the rest ignored" in parsed.defects


def test_nesting_depth_is_limited():
    depth = parse.MAX_DEPTH + 5
    body = "".join(
        f"--b{n}\r\nContent-Type: multipart/mixed; boundary=b{n + 1}\r\n\r\n" for n in range(depth)
    )
    body += f"--b{depth}\r\nContent-Type: text/plain\r\n\r\ntrop profond\r\n"
    parsed = parse_message(message("Content-Type: multipart/mixed; boundary=b0", body))
    assert f"message: nesting deeper than {parse.MAX_DEPTH}, the rest ignored" in parsed.defects
    assert "trop profond" not in parsed.text


def test_absurd_nesting_keeps_the_headers():
    body = "".join(
        f"--b{n}\r\nContent-Type: multipart/mixed; boundary=b{n + 1}\r\n\r\n" for n in range(3000)
    )
    parsed = parse_message(
        message("Subject: profond\nContent-Type: multipart/mixed; boundary=b0", body)
    )
    assert parsed.subject == "profond"
    assert parsed.defects[0].startswith("message: unparsable body")


@pytest.mark.parametrize(
    ("name", "content_type", "safe"),
    [
        ("compte rendu.pdf", "application/pdf", "compte rendu.pdf"),
        ("..\\..\\windows\\system.ini", "text/plain", "_.._windows_system.ini"),
        ("/etc/passwd", "text/plain", "_etc_passwd"),
        ("facture\u202efdp.exe", "application/octet-stream", "facture_fdp.exe"),
        ("a\r\nb\x00c.txt", "text/plain", "a__b_c.txt"),
        ("CON.txt", "text/plain", "_CON.txt"),
        ("...", "application/pdf", "piece-jointe-3.pdf"),
        ("", "image/jpeg", "piece-jointe-3.jpg"),
        (None, "application/x-unknown-thing", "piece-jointe-3.bin"),
    ],
)
def test_safe_filename(name, content_type, safe):
    assert safe_filename(name, content_type=content_type, index=3) == safe


def test_safe_filename_is_shortened_keeping_the_extension():
    name = safe_filename("é" * 500 + ".pdf", content_type="application/pdf", index=1)
    assert len(name) == parse.MAX_FILENAME
    assert name.endswith("é.pdf")
