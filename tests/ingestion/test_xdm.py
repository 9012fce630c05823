"""IHE XDM packages: the ANS-derived samples read field by field, and hostile packages refused.

The samples are copies of ``shared/data/xdm`` (see ``fixtures/xdm/PROVENANCE.md``); every value
asserted below was read from those files.
"""

import hashlib
import io
import time
import tracemalloc
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from apps.ingestion import xdm

FIXTURES = Path(__file__).parent / "fixtures" / "xdm"
SAMPLE = FIXTURES / "IHE_XDM.ZIP"


def entries(path: Path = SAMPLE) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def make_zip(files: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def with_subset(files: dict[str, bytes], old: str, new: str) -> dict[str, bytes]:
    return {name.replace(f"/{old}/", f"/{new}/"): data for name, data in files.items()}


# --- the samples --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["IHE_XDM.ZIP", "IHE_XDM_SS000001.ZIP"])
def test_sample_packages_give_the_values_of_their_metadata(name):
    """SUBSET01 with URIs relative to METADATA.XML, SS000001 with URIs relative to IHE_XDM/."""
    package = xdm.read_xdm((FIXTURES / name).read_bytes())
    assert package.problems == ()
    subset = "SUBSET01" if name == "IHE_XDM.ZIP" else "SS000001"
    assert package.metadata_path == f"IHE_XDM/{subset}/METADATA.XML"
    (document,) = package.documents
    assert document.path == f"IHE_XDM/{subset}/DOC0001.XML"
    assert document.mime_type == "text/xml"
    assert document.patient == xdm.Patient(
        ins="279035121518989",
        ins_oid="1.2.250.1.213.1.4.10",
        family="PAT-TROIS",
        given="DOMINIQUE",
        birth_date=date(1979, 3, 28),
        sex="F",
    )
    assert document.author == xdm.Author(
        idnat="801234560801",
        family="BIDEAULT",
        given="Jacques",
        institution="Centre de radiologie Ambroise",
        institution_idnat="1750803447",
    )
    assert document.author.name == "Jacques BIDEAULT"
    assert document.type_code == xdm.Code(
        "18748-4", "CR d’imagerie médicale", "2.16.840.1.113883.6.1"
    )
    assert document.class_code == xdm.Code("10", "Compte rendu", "1.2.250.1.213.1.1.4.1")
    assert document.confidentiality == ("N",)
    assert document.created_at == datetime(2021, 1, 8, 10, 17, tzinfo=UTC)
    assert document.title == "CR d’imagerie médicale - Scanner Tête + Cou + Thorax avec injection"
    assert document.size == 108800
    assert document.hash_verified is True
    assert document.replaces is True  # relatedDocument RPLC: "annule et remplace"
    assert document.problems == ()
    # The PDF rendition is the CDA's nonXMLBody: the very PDF the message also attaches.
    assert document.pdf.startswith(b"%PDF-")
    assert len(document.pdf) == 61736
    assert hashlib.sha256(document.pdf).hexdigest() == (
        "ce6c6ca92158909917fb6097f562c69f08dcc7b070635af1ad8e42b4eabe48ea"
    )


def test_cda_header_of_the_sample_document():
    cda = xdm.parse_cda_header(entries()["IHE_XDM/SUBSET01/DOC0001.XML"])
    assert cda.document_id == "1.2.250.1.213.1.1.1.45.2024.2.1"
    assert cda.code == xdm.Code("18748-4", "CR d’imagerie médicale", "2.16.840.1.113883.6.1")
    assert cda.title == "CR d’imagerie médicale - Scanner Tête + Cou + Thorax avec injection"
    # effectiveTime 20210108111700+0100
    assert cda.effective_time == datetime(2021, 1, 8, 10, 17, tzinfo=UTC)
    assert cda.patient.ins == "279035121518989"
    assert cda.patient.ins_oid == "1.2.250.1.213.1.4.10"
    assert (cda.patient.family, cda.patient.given) == ("PAT-TROIS", "DOMINIQUE")  # birth name
    assert cda.patient.birth_date == date(1979, 3, 28)
    assert cda.patient.sex == "F"
    assert cda.author.idnat == "801234560801"
    assert cda.author.name == "Jacques BIDEAULT"
    assert cda.author.institution == "Centre de radiologie Ambroise"
    assert cda.author.institution_idnat == "1750803447"
    assert cda.custodian == "Centre de radiologie Ambroise"
    assert cda.version == "2"
    assert cda.replaces is True


def test_cda_samples_level_1_and_structured_carry_their_pdf():
    n1 = xdm.parse_cda_header((FIXTURES / "cda-n1-sample.xml").read_bytes())
    assert n1.code.code == "11502-2"
    assert n1.code.label == "CR d'examens biologiques"
    assert n1.author.name == "Marcel CAMPARINI"
    assert n1.author.idnat == "801234534765"
    assert n1.patient.ins == "279035121518989"
    assert n1.pdf.startswith(b"%PDF-")
    structured = xdm.parse_cda_header((FIXTURES / "cda-structured-bio-sample.xml").read_bytes())
    assert structured.code.code == "11502-2"
    assert structured.pdf.startswith(b"%PDF-")  # observationMedia in the structuredBody
    assert structured.replaces is False


def test_drim_m_metadata_fragment_with_undeclared_prefixes_is_read():
    """The ANS DRIM-M METADATA.XML declares neither ``ns3`` nor its default namespace."""
    metadata = xdm.parse_metadata((FIXTURES / "DRIMM-METADATA.XML").read_bytes())
    assert metadata.submission_patient.ins == "162018885045327"
    assert metadata.submission_author.idnat == "899700367909"
    assert metadata.submission_author.institution == "BCOM"
    kos, signature = metadata.entries
    assert kos.uri == "SS000001/KOS_1_1.DCM"
    assert kos.mime_type == "application/dicom"
    assert kos.size == 5164
    assert kos.hash == "5a4009cca445f28810fd34dc8e3526cbe9814664"
    assert kos.patient.ins == "162018885045327"
    assert (kos.patient.family, kos.patient.given, kos.patient.sex) == ("PAT-SIX", "Alain", "M")
    assert kos.patient.birth_date == date(1996, 1, 24)
    assert kos.type_code.code == "IMG-KOS"
    assert signature.confidentiality == ("N", "MASQUE_PS", "INVISIBLE_PATIENT")


def test_subset_folder_is_discovered_not_assumed():
    files = with_subset(entries(), "SUBSET01", "LOT_42")
    package = xdm.read_xdm(make_zip(files))
    (document,) = package.documents
    assert document.path == "IHE_XDM/LOT_42/DOC0001.XML"
    assert document.hash_verified


def test_uri_split_over_several_values_is_joined():
    assert xdm.join_uri(["2|0001.XML", "1|DOC"]) == "DOC0001.XML"
    assert xdm.join_uri(["DOC0001.XML"]) == "DOC0001.XML"


def test_hl7_values():
    assert xdm.parse_cx("279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH") == (
        "279035121518989", "1.2.250.1.213.1.4.10",
    )  # fmt: skip
    assert xdm.parse_xon("Centre A\\S\\B^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750803447") == (
        "Centre A^B", "1750803447",
    )  # fmt: skip
    assert xdm.parse_hl7_time("20210108111700+0100") == datetime(2021, 1, 8, 10, 17, tzinfo=UTC)
    assert xdm.parse_hl7_time("2021") == datetime(2021, 1, 1, tzinfo=UTC)
    assert xdm.parse_hl7_time("20211308") is None
    assert xdm.ins_is_valid("279035121518989")
    assert not xdm.ins_is_valid("279035121518988")


# --- integrity ----------------------------------------------------------------------------------


def test_altered_document_is_flagged_never_trusted():
    files = entries()
    name = "IHE_XDM/SUBSET01/DOC0001.XML"
    files[name] = files[name].replace(b"PAT-TROIS", b"PAT-QUATR")  # same size, other content
    (document,) = xdm.read_xdm(make_zip(files)).documents
    assert document.hash_verified is False
    assert "hash_mismatch" in document.problems
    assert "size_mismatch" not in document.problems
    assert document.patient.family == "PAT-TROIS"  # the metadata still says so; flagged


def test_truncated_document_has_size_and_hash_mismatch():
    files = entries()
    files["IHE_XDM/SUBSET01/DOC0001.XML"] += b"<!-- appended -->"
    (document,) = xdm.read_xdm(make_zip(files)).documents
    assert {"size_mismatch", "hash_mismatch"} <= set(document.problems)
    assert not document.hash_verified


def test_metadata_without_hash_is_not_verified():
    files = entries()
    meta = "IHE_XDM/SUBSET01/METADATA.XML"
    files[meta] = files[meta].replace(b"388f614e25c7da35d0dab9674d03517be2e8e21e", b"")
    (document,) = xdm.read_xdm(make_zip(files)).documents
    assert not document.hash_verified
    assert "hash_missing" in document.problems


def test_x_mss_headers_are_checked_against_the_content():
    data = SAMPLE.read_bytes()
    assert xdm.read_xdm(data, x_mss_codecda=("18748-4",), x_mss_ins="O").problems == ()
    assert "codecda_mismatch" in xdm.read_xdm(data, x_mss_codecda=("11502-2",)).problems


def test_missing_document_is_reported():
    files = entries()
    del files["IHE_XDM/SUBSET01/DOC0001.XML"]
    (document,) = xdm.read_xdm(make_zip(files)).documents
    assert document.problems == ("document_missing",)
    assert document.patient.ins == "279035121518989"  # from the metadata
    assert not document.hash_verified


# --- hostile packages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    ["../../README.TXT", "../SUBSET02/DOC0001.XML", "/etc/passwd", "file:///etc/passwd",
     "C:\\Windows\\win.ini", "http://example.org/doc.xml", "..\\..\\README.TXT"],
)  # fmt: skip
def test_uri_outside_the_package_is_refused(uri):
    files = entries()
    files["IHE_XDM/SUBSET02/DOC0001.XML"] = b"<ClinicalDocument/>"
    meta = "IHE_XDM/SUBSET01/METADATA.XML"
    files[meta] = files[meta].replace(b"<rim:Value>DOC0001.XML</rim:Value>",
                                      f"<rim:Value>{uri}</rim:Value>".encode())  # fmt: skip
    (document,) = xdm.read_xdm(make_zip(files)).documents
    assert document.problems == ("document_uri_unsafe",)
    assert document.path == ""
    assert document.size is None  # nothing was read
    assert document.pdf is None


@pytest.mark.parametrize("name", ["../evil.txt", "/abs.txt", "IHE_XDM/../../x", "C:/x", "a\\b"])
def test_zip_entry_with_unsafe_name_is_refused(name):
    files = entries()
    files[name] = b"x"
    with pytest.raises(xdm.XdmRejected) as caught:
        xdm.read_xdm(make_zip(files))
    assert caught.value.code == "zip_unsafe_name"


def test_zip_bomb_is_refused_quickly_with_bounded_memory():
    """1 GB of zeros compressed to about 1 MB: refused from its header, nothing inflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries().items():
            archive.writestr(name, data)
        with archive.open("IHE_XDM/SUBSET01/ZEROS.BIN", "w", force_zip64=True) as stream:
            chunk = bytes(1024 * 1024)
            for _ in range(1024):
                stream.write(chunk)
    bomb = out.getvalue()
    assert len(bomb) < 5 * 1024 * 1024
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(xdm.XdmRejected) as caught:
        xdm.read_xdm(bomb)
    elapsed = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert caught.value.code == "zip_too_large"
    assert elapsed < 1.0
    assert peak < 20 * 1024 * 1024


def test_high_ratio_entry_under_the_size_limits_is_refused():
    files = entries()
    files["IHE_XDM/SUBSET01/PAD.BIN"] = bytes(8 * 1024 * 1024)  # 8 MB → ~8 KB
    with pytest.raises(xdm.XdmRejected) as caught:
        xdm.read_xdm(make_zip(files))
    assert caught.value.code == "zip_ratio"


def _declare_size(data: bytes, name: str, size: int) -> bytes:
    """``data`` with the uncompressed size of ``name`` in the central directory replaced."""
    data = bytearray(data)
    offset = data.find(b"PK\x01\x02")
    while offset != -1:
        length = int.from_bytes(data[offset + 28 : offset + 30], "little")
        if data[offset + 46 : offset + 46 + length] == name.encode():
            data[offset + 24 : offset + 28] = size.to_bytes(4, "little")
            return bytes(data)
        offset = data.find(b"PK\x01\x02", offset + 4)
    raise AssertionError(name)


def test_entry_lying_about_its_size_is_never_inflated_past_it():
    """A central directory claiming 100 bytes for 10 MB of zeros: reading stops at the
    declared size, and the document is flagged."""
    files = entries()
    name = "IHE_XDM/SUBSET01/DOC0001.XML"
    files[name] = bytes(10 * 1024 * 1024)
    tracemalloc.start()
    (document,) = xdm.read_xdm(_declare_size(make_zip(files), name, 100)).documents
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert document.size in (None, 100)
    assert {"document_unreadable", "size_mismatch"} & set(document.problems)
    assert not document.hash_verified
    assert peak < 5 * 1024 * 1024


def test_too_many_entries_is_refused():
    files = entries()
    files.update({f"IHE_XDM/SUBSET01/F{n}.TXT": b"" for n in range(300)})
    with pytest.raises(xdm.XdmRejected) as caught:
        xdm.read_xdm(make_zip(files))
    assert caught.value.code == "zip_too_many_entries"


def test_nested_zip_is_not_opened():
    inner = SAMPLE.read_bytes()
    files = {"IHE_XDM.ZIP": inner, "README.TXT": b"rien"}
    with pytest.raises(xdm.XdmRejected) as caught:
        xdm.read_xdm(make_zip(files))
    assert caught.value.code == "metadata_missing"


def test_not_a_zip_is_refused():
    with pytest.raises(xdm.XdmRejected) as caught:
        xdm.read_xdm(b"%PDF-1.4 not a zip")
    assert caught.value.code == "zip_unreadable"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0">&lol9;
</lcm:SubmitObjectsRequest>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0">&xxe;
</lcm:SubmitObjectsRequest>"""


@pytest.mark.parametrize("metadata", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["laughs", "xxe"])
def test_metadata_with_entities_is_refused(metadata):
    files = entries()
    files["IHE_XDM/SUBSET01/METADATA.XML"] = metadata
    started = time.monotonic()
    with pytest.raises(xdm.XdmRejected) as caught:
        xdm.read_xdm(make_zip(files))
    assert caught.value.code == "metadata_unsafe"
    assert time.monotonic() - started < 1.0


def test_fragment_with_entities_is_refused_too():
    """The namespace-recovery path must not let a DTD in."""
    fragment = BILLION_LAUGHS.split(b"?>", 1)[1].replace(
        b' xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"', b""
    )
    with pytest.raises(xdm.XdmRejected) as caught:
        xdm.parse_metadata(fragment)
    assert caught.value.code == "metadata_unsafe"


def test_cda_with_external_entity_is_a_document_problem():
    files = entries()
    cda = EXTERNAL_ENTITY.replace(b"lcm:SubmitObjectsRequest", b"ClinicalDocument")
    name = "IHE_XDM/SUBSET01/DOC0001.XML"
    files[name] = cda
    (document,) = xdm.read_xdm(make_zip(files)).documents
    assert "cda_unsafe" in document.problems
    assert document.cda is None


def test_oversized_metadata_is_refused():
    files = entries()
    files["IHE_XDM/SUBSET01/METADATA.XML"] += b" " * (5 * 1024 * 1024)
    with pytest.raises(xdm.XdmRejected) as caught:
        xdm.read_xdm(make_zip(files, compression=zipfile.ZIP_STORED))
    assert caught.value.code == "metadata_too_large"  # from its declared size, before parsing


def test_readme_and_index_are_ignored_and_no_metadata_is_refused():
    files = {k: v for k, v in entries().items() if not k.endswith("METADATA.XML")}
    with pytest.raises(xdm.XdmRejected) as caught:
        xdm.read_xdm(make_zip(files))
    assert caught.value.code == "metadata_missing"
