"""Read an IHE XDM package (``IHE_XDM.ZIP``) as MSSanté senders attach it — pure functions.

``read_xdm(data)`` opens the zip in memory with limits (entries, declared and actual sizes,
compression ratio, unsafe names), finds ``IHE_XDM/<SUBSET>/METADATA.XML`` (the subset folder is
discovered, never assumed), reads it as an ebRIM ``SubmitObjectsRequest`` with defusedxml (no
DTD, no entities, bounded size), follows each DocumentEntry's ``URI`` (relative to the folder of
METADATA.XML, then to ``IHE_XDM/``), checks its ``size`` and SHA-1 ``hash``, reads the CDA R2
header of XML documents and takes a PDF rendition (a PDF document of the package, or the CDA's
base64 ``application/pdf`` body).

A package that cannot be opened safely raises ``XdmRejected`` (with a stable ``code``); any other
problem is reported in ``problems`` (stable codes, see ``PROBLEMS``) and never hides a value:
a document whose hash does not match is returned with ``hash_verified=False``. Nothing here logs,
touches the database or reads the disk. Nested zips are never opened.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import posixpath
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone
from io import BytesIO
from xml.etree.ElementTree import Element, ParseError

import defusedxml
from defusedxml.ElementTree import fromstring as _xml_fromstring

from apps.core.exceptions import ApplicationError

METADATA_NAME = "METADATA.XML"
XDM_ROOT = "IHE_XDM"

# INS (MSSANTE.md §2/§4): INS-NIR, INS-NIA, and the test identities' OIDs.
INS_OIDS = {
    "1.2.250.1.213.1.4.8": "INS-NIR",
    "1.2.250.1.213.1.4.9": "INS-NIA",
    "1.2.250.1.213.1.4.10": "INS-NIR (test)",
    "1.2.250.1.213.1.4.11": "INS-NIR (démonstration)",
    "1.2.250.1.213.1.4.12": "INS-NIA (test)",
    "1.2.250.1.213.1.4.13": "INS-NIA (démonstration)",
}
IDNAT_PS_OID = "1.2.250.1.71.4.2.1"
IDNAT_STRUCTURE_OID = "1.2.250.1.71.4.2.2"
SIGNATURE_CLASS = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"  # IHE DSG

# XDS classification and identification schemes (ITI TF-3 §4.2.5).
_AUTHOR_DOC = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
_AUTHOR_SET = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
_PATIENT_ID_DOC = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
_PATIENT_ID_SET = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
_UNIQUE_ID_DOC = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

# Wrapper for the DRIM-M style fragment that uses prefixes it never declares.
_NAMESPACE_WRAPPER = (
    '<xdm-wrapper xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"'
    ' xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"'
    ' xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"'
    ' xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"'
    ' xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"'
    ' xmlns:ns1="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"'
    ' xmlns:ns2="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"'
    ' xmlns:ns3="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"'
    ' xmlns:ns4="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"'
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
)
ROOT_ELEMENTS = {"SubmitObjectsRequest", "ProvideAndRegisterDocumentSetRequest", "xdm-wrapper"}
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_HL7_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")
_NIR = re.compile(r"^[12378]\d{4}(?:\d{2}|2A|2B)\d{8}$")
_SPLIT_URI = re.compile(r"^(\d+)\|(.*)$", re.S)

# Problem codes (stable; the UI maps them to French sentences).
PROBLEMS = (
    "zip_unreadable", "zip_encrypted", "zip_too_many_entries", "zip_too_large", "zip_ratio",
    "zip_unsafe_name", "metadata_missing", "metadata_several", "metadata_too_large",
    "metadata_unsafe", "metadata_unreadable", "no_document", "document_uri_missing",
    "document_uri_unsafe", "document_missing", "document_unreadable", "size_missing",
    "size_mismatch", "hash_missing", "hash_mismatch", "cda_unsafe", "cda_unreadable",
    "pdf_invalid", "ins_invalid", "ins_missing", "patient_mismatch", "several_patients",
    "codecda_mismatch",
)  # fmt: skip


class XdmRejected(ApplicationError):
    """The package cannot be read safely; ``code`` is one of ``PROBLEMS``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class XdmLimits:
    max_entries: int = 256
    max_entry_size: int = 32 * 1024 * 1024  # uncompressed, per entry
    max_total_size: int = 64 * 1024 * 1024  # uncompressed, whole package
    max_ratio: int = 200  # uncompressed / compressed, checked on entries over ratio_floor
    ratio_floor: int = 1024 * 1024
    max_metadata_size: int = 4 * 1024 * 1024
    max_cda_size: int = 32 * 1024 * 1024


DEFAULT_LIMITS = XdmLimits()


@dataclass(frozen=True)
class Code:
    code: str = ""
    label: str = ""
    system: str = ""


@dataclass(frozen=True)
class Patient:
    ins: str = ""
    ins_oid: str = ""
    family: str = ""
    given: str = ""
    birth_date: date | None = None
    sex: str = ""  # "M", "F", "U" or ""


@dataclass(frozen=True)
class Author:
    idnat: str = ""
    family: str = ""
    given: str = ""
    institution: str = ""
    institution_idnat: str = ""

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.given, self.family) if part)


@dataclass(frozen=True)
class CdaHeader:
    """What the ClinicalDocument header says; ``pdf`` is its base64 PDF body, decoded."""

    document_id: str = ""
    code: Code = field(default_factory=Code)
    title: str = ""
    effective_time: datetime | None = None
    patient: Patient = field(default_factory=Patient)
    author: Author = field(default_factory=Author)
    custodian: str = ""
    version: str = ""
    replaces: bool = False  # relatedDocument RPLC: "annule et remplace"
    pdf: bytes | None = field(default=None, repr=False)
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetadataEntry:
    """One XDSDocumentEntry of METADATA.XML, as written (nothing checked yet)."""

    entry_id: str
    uri: str
    mime_type: str
    size: int | None
    hash: str
    unique_id: str
    patient: Patient
    author: Author
    type_code: Code
    class_code: Code
    confidentiality: tuple[str, ...]
    creation_time: datetime | None
    title: str


@dataclass(frozen=True)
class Metadata:
    entries: tuple[MetadataEntry, ...]
    submission_patient: Patient
    submission_author: Author


@dataclass(frozen=True)
class XdmDocument:
    """A document of the package: metadata values, completed by the CDA header."""

    entry_id: str
    path: str  # inside the zip, "" when not found
    mime_type: str
    patient: Patient
    author: Author
    type_code: Code
    class_code: Code
    confidentiality: tuple[str, ...]
    created_at: datetime | None
    title: str
    size: int | None  # actual size, None when not read
    hash_verified: bool  # size and SHA-1 both given by the metadata and both matching
    replaces: bool
    cda: CdaHeader | None
    pdf: bytes | None = field(repr=False)
    problems: tuple[str, ...]

    @property
    def is_signature(self) -> bool:
        """An IHE DSG signature of the submission set, not a clinical document."""
        return self.class_code.code == SIGNATURE_CLASS or self.type_code.code == "E1762"


@dataclass(frozen=True)
class XdmPackage:
    metadata_path: str
    documents: tuple[XdmDocument, ...]
    problems: tuple[str, ...]  # of the package as a whole

    @property
    def all_problems(self) -> tuple[str, ...]:
        seen = dict.fromkeys(self.problems)
        for document in self.documents:
            seen.update(dict.fromkeys(document.problems))
        return tuple(seen)


# --- small helpers ----------------------------------------------------------------------------


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _child(element: Element | None, name: str) -> Element | None:
    if element is None:
        return None
    return next((child for child in element if _local(child.tag) == name), None)


def _path(element: Element | None, *names: str) -> Element | None:
    for name in names:
        element = _child(element, name)
    return element


def _text(element: Element | None) -> str:
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def _attr(element: Element | None, name: str) -> str:
    if element is None:
        return ""
    return " ".join((element.get(name) or "").split())


def _unescape_hl7(value: str) -> str:
    for escaped, plain in (("\\F\\", "|"), ("\\S\\", "^"), ("\\T\\", "&"), ("\\R\\", "~")):
        value = value.replace(escaped, plain)
    return value.replace("\\E\\", "\\").strip()


def _components(value: str) -> list[str]:
    return value.split("^")


def _component(parts: list[str], index: int) -> str:
    return _unescape_hl7(parts[index]) if index < len(parts) else ""


def parse_cx(value: str) -> tuple[str, str]:
    """HL7 CX ``id^^^&oid&ISO^type`` → (id, assigning authority OID)."""
    parts = _components(value)
    authority = parts[3].split("&") if len(parts) > 3 else []
    oid = authority[1] if len(authority) > 1 else (authority[0] if authority else "")
    return _component(parts, 0), oid.strip()


def parse_xcn(value: str) -> Author:
    """HL7 XCN ``IdNat^NOM^Prénom^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS``."""
    parts = _components(value)
    return Author(
        idnat=_component(parts, 0), family=_component(parts, 1), given=_component(parts, 2)
    )


def parse_xon(value: str) -> tuple[str, str]:
    """HL7 XON ``Nom^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^IdNat`` → (name, IdNat)."""
    parts = _components(value)
    return _component(parts, 0), _component(parts, 9) or _component(parts, 2)


def parse_hl7_time(value: str) -> datetime | None:
    """HL7 TS (``YYYYMMDD[HH[MM[SS]]][+ZZZZ]``) → aware datetime; no zone means UTC (XDS)."""
    match = _HL7_TS.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        tz = UTC
        if zone:
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
            tz = timezone(-offset if zone[0] == "-" else offset)
        stamp = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                         int(minute or 0), int(second or 0), tzinfo=tz)  # fmt: skip
    except ValueError:
        return None
    return stamp.astimezone(UTC)


def _birth_date(value: str) -> date | None:
    stamp = parse_hl7_time(value[:8]) if len(value) >= 8 else None
    return stamp.date() if stamp else None


def _sex(value: str) -> str:
    value = value.strip().upper()[:1]
    return value if value in ("M", "F", "U") else ""


def ins_is_valid(ins: str) -> bool:
    """A 15-character NIR-shaped INS whose key (the last two digits) matches."""
    if not _NIR.match(ins):
        return False
    body = ins[:13].replace("2A", "19").replace("2B", "18")
    return 97 - int(body) % 97 == int(ins[13:])


def _patient_id(candidates: Iterable[str]) -> tuple[str, str]:
    """The first HL7 CX among ``candidates`` whose authority is an INS OID."""
    for value in candidates:
        ident, oid = parse_cx(value)
        if ident and oid in INS_OIDS:
            return ident, oid
    return "", ""


# --- METADATA.XML -----------------------------------------------------------------------------


def _parse_xml(data: bytes, *, unsafe: str, unreadable: str) -> Element:
    try:
        return _xml_fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise XdmRejected(unsafe) from exc
    except (ParseError, ValueError, UnicodeError) as exc:
        raise XdmRejected(unreadable) from exc


def parse_metadata(data: bytes, *, limits: XdmLimits = DEFAULT_LIMITS) -> Metadata:
    """Read a ``SubmitObjectsRequest``. A fragment using undeclared ebRIM prefixes (as the
    DRIM-M samples do) is read by wrapping it in the usual namespace declarations."""
    if len(data) > limits.max_metadata_size:
        raise XdmRejected("metadata_too_large")
    try:
        root = _parse_xml(data, unsafe="metadata_unsafe", unreadable="metadata_unreadable")
    except XdmRejected as exc:
        if exc.code != "metadata_unreadable":
            raise
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise exc from None
        text = _XML_DECLARATION.sub("", text, count=1)
        if "<!" in text.replace("<![CDATA[", "").replace("<!--", ""):
            raise XdmRejected("metadata_unsafe") from None
        wrapped = (_NAMESPACE_WRAPPER + text + "</xdm-wrapper>").encode()
        root = _parse_xml(wrapped, unsafe="metadata_unsafe", unreadable="metadata_unreadable")
    if _local(root.tag) not in ROOT_ELEMENTS:
        raise XdmRejected("metadata_unreadable")

    submission_patient = Patient()
    submission_author = Author()
    package = next((e for e in root.iter() if _local(e.tag) == "RegistryPackage"), None)
    if package is not None:
        ids = _external_ids(package, _PATIENT_ID_SET, "XDSSubmissionSet.patientId")
        ins, oid = _patient_id(ids)
        submission_patient = Patient(ins=ins, ins_oid=oid)
        submission_author = _author(package, _AUTHOR_SET)
    entries = tuple(
        _entry(element, submission_patient)
        for element in root.iter()
        if _local(element.tag) == "ExtrinsicObject"
    )
    return Metadata(entries, submission_patient, submission_author)


def _slots(element: Element) -> dict[str, list[str]]:
    slots: dict[str, list[str]] = {}
    for slot in _children(element, "Slot"):
        values = [(value.text or "").strip() for value in _path(slot, "ValueList") or []
                  if _local(value.tag) == "Value"]  # fmt: skip
        slots.setdefault(slot.get("name", ""), []).extend(values)
    return slots


def _localized(element: Element | None) -> str:
    string = _child(element, "LocalizedString")
    return _attr(string, "value")


def _external_ids(element: Element, scheme: str, name: str) -> list[str]:
    return [
        ident.get("value", "")
        for ident in _children(element, "ExternalIdentifier")
        if ident.get("identificationScheme") == scheme or _localized(_child(ident, "Name")) == name
    ]


def _classifications(element: Element, scheme: str) -> list[Element]:
    return [c for c in _children(element, "Classification")
            if c.get("classificationScheme") == scheme]  # fmt: skip


def _code(element: Element, scheme: str) -> Code:
    found = _classifications(element, scheme)
    if not found:
        return Code()
    node = found[0]
    system = (_slots(node).get("codingScheme") or [""])[0]
    return Code(code=_attr(node, "nodeRepresentation"), label=_localized(_child(node, "Name")),
                system=system)  # fmt: skip


def _author(element: Element, scheme: str) -> Author:
    for node in _classifications(element, scheme):
        slots = _slots(node)
        person = next((v for v in slots.get("authorPerson", []) if v), "")
        institution = next((v for v in slots.get("authorInstitution", []) if v), "")
        if not (person or institution):
            continue
        author = parse_xcn(person) if person else Author()
        name, idnat = parse_xon(institution) if institution else ("", "")
        return replace(author, institution=name, institution_idnat=idnat)
    return Author()


def join_uri(values: list[str]) -> str:
    """The ``URI`` slot: one value, or (XDS.a style) several ``n|part`` values to concatenate."""
    values = [v for v in values if v]
    if len(values) == 1 and not _SPLIT_URI.match(values[0]):
        return values[0].strip()
    parts = []
    for value in values:
        match = _SPLIT_URI.match(value)
        if match is None:
            return ""
        parts.append((int(match.group(1)), match.group(2)))
    return "".join(part for _n, part in sorted(parts)).strip()


def _entry(element: Element, submission_patient: Patient) -> MetadataEntry:
    slots = _slots(element)
    info = {}
    for value in slots.get("sourcePatientInfo", []):
        key, _sep, rest = value.partition("|")
        info.setdefault(key.strip().upper(), rest)
    name = _components(info.get("PID-5", ""))
    ins, oid = _patient_id(
        [*_external_ids(element, _PATIENT_ID_DOC, "XDSDocumentEntry.patientId"),
         *slots.get("sourcePatientId", [])]
    )  # fmt: skip
    if not ins:
        ins, oid = submission_patient.ins, submission_patient.ins_oid
    size_text = (slots.get("size") or [""])[0]
    unique = _external_ids(element, _UNIQUE_ID_DOC, "XDSDocumentEntry.uniqueId")
    return MetadataEntry(
        entry_id=element.get("id", ""),
        uri=join_uri(slots.get("URI", [])),
        mime_type=_attr(element, "mimeType").lower(),
        size=int(size_text) if size_text.isdigit() else None,
        hash=(slots.get("hash") or [""])[0].lower(),
        unique_id=unique[0] if unique else "",
        patient=Patient(
            ins=ins,
            ins_oid=oid,
            family=_component(name, 0),
            given=_component(name, 1),
            birth_date=_birth_date(info.get("PID-7", "")),
            sex=_sex(info.get("PID-8", "")),
        ),
        author=_author(element, _AUTHOR_DOC),
        type_code=_code(element, _TYPE_CODE),
        class_code=_code(element, _CLASS_CODE),
        confidentiality=tuple(
            _attr(c, "nodeRepresentation") for c in _classifications(element, _CONFIDENTIALITY)
        ),
        creation_time=parse_hl7_time((slots.get("creationTime") or [""])[0]),
        title=_localized(_child(element, "Name")),
    )


# --- the CDA header -----------------------------------------------------------------------------


def _hl7_name(name: Element | None) -> tuple[str, str]:
    """(family, given) of an HL7 PN, preferring the birth name ("BR"), then the used one."""
    if name is None:
        return "", ""

    def pick(tag: str) -> str:
        found = _children(name, tag)
        for qualifier in ("BR", "CL", ""):
            for part in found:
                if (part.get("qualifier") or "") == qualifier and _text(part):
                    return _text(part)
        return _text(found[0]) if found else ""

    return pick("family"), pick("given")


def _ids(element: Element | None) -> list[tuple[str, str]]:
    if element is None:
        return []
    return [(_attr(i, "extension"), _attr(i, "root")) for i in _children(element, "id")]


def _decode_pdf(text: str) -> bytes | None:
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if data.startswith(b"%PDF-") else None


def parse_cda_header(data: bytes, *, limits: XdmLimits = DEFAULT_LIMITS) -> CdaHeader:
    """The header fields of a CDA R2 ``ClinicalDocument`` and its base64 PDF, if any."""
    if len(data) > limits.max_cda_size:
        raise XdmRejected("cda_unreadable")
    root = _parse_xml(data, unsafe="cda_unsafe", unreadable="cda_unreadable")
    if _local(root.tag) != "ClinicalDocument":
        raise XdmRejected("cda_unreadable")
    problems: list[str] = []
    code = _child(root, "code")
    patient_role = _path(root, "recordTarget", "patientRole")
    person = _child(patient_role, "patient")
    family, given = _hl7_name(_child(person, "name"))
    ins, oid = next(((e, r) for e, r in _ids(patient_role) if e and r in INS_OIDS), ("", ""))
    assigned = _path(root, "author", "assignedAuthor")
    author_family, author_given = _hl7_name(_path(assigned, "assignedPerson", "name"))
    organisation = _child(assigned, "representedOrganization")
    idnat = next((e for e, r in _ids(assigned) if e and r == IDNAT_PS_OID), "")
    if not idnat:
        idnat = next((e for e, _r in _ids(assigned) if e), "")
    custodian = _path(root, "custodian", "assignedCustodian", "representedCustodianOrganization")
    document_id = next(iter(_ids(root)), ("", ""))

    pdf = None
    for element in root.iter():
        if _local(element.tag) in ("text", "value") and (
            (element.get("mediaType") or "").lower() == "application/pdf"
        ):
            pdf = _decode_pdf(element.text or "")
            if pdf is None:
                problems.append("pdf_invalid")
            break
    return CdaHeader(
        document_id=":".join(part for part in (document_id[1], document_id[0]) if part),
        code=Code(
            code=_attr(code, "code"),
            label=_attr(code, "displayName"),
            system=_attr(code, "codeSystem"),
        ),
        title=_text(_child(root, "title")),
        effective_time=parse_hl7_time(_attr(_child(root, "effectiveTime"), "value")),
        patient=Patient(
            ins=ins,
            ins_oid=oid,
            family=family,
            given=given,
            birth_date=_birth_date(_attr(_child(person, "birthTime"), "value")),
            sex=_sex(_attr(_child(person, "administrativeGenderCode"), "code")),
        ),
        author=Author(
            idnat=idnat,
            family=author_family,
            given=author_given,
            institution=_text(_child(organisation, "name")),
            institution_idnat=next((e for e, _r in _ids(organisation) if e), ""),
        ),
        custodian=_text(_child(custodian, "name")),
        version=_attr(_child(root, "versionNumber"), "value"),
        replaces=any(
            _attr(r, "typeCode").upper() == "RPLC" for r in _children(root, "relatedDocument")
        ),
        pdf=pdf,
        problems=tuple(problems),
    )


# --- the zip ------------------------------------------------------------------------------------


def _safe_name(name: str) -> bool:
    if not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return False
    if re.match(r"^[A-Za-z]:", name):
        return False
    return ".." not in name.split("/")


class _Zip:
    """A zip opened in memory whose every entry has been checked against the limits."""

    def __init__(self, data: bytes, limits: XdmLimits) -> None:
        self.limits = limits
        try:
            self.zip = zipfile.ZipFile(BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
            raise XdmRejected("zip_unreadable") from exc
        if len(infos) > limits.max_entries:
            raise XdmRejected("zip_too_many_entries")
        total = 0
        self.entries: dict[str, zipfile.ZipInfo] = {}
        self.by_upper: dict[str, str] = {}
        for info in infos:
            if not _safe_name(info.filename):
                raise XdmRejected("zip_unsafe_name")
            if info.flag_bits & 0x1:
                raise XdmRejected("zip_encrypted")
            if info.file_size > limits.max_entry_size:
                raise XdmRejected("zip_too_large")
            total += info.file_size
            if total > limits.max_total_size:
                raise XdmRejected("zip_too_large")
            if info.file_size > limits.ratio_floor and (
                info.file_size > limits.max_ratio * max(info.compress_size, 1)
            ):
                raise XdmRejected("zip_ratio")
            if info.is_dir():
                continue
            self.entries[info.filename] = info
            self.by_upper.setdefault(info.filename.upper(), info.filename)

    def find(self, name: str) -> str | None:
        """The entry called ``name`` (exact, else ignoring case as FAT-formatted media do)."""
        if name in self.entries:
            return name
        return self.by_upper.get(name.upper())

    def read(self, name: str, *, limit: int) -> bytes:
        """The entry's content, never more than ``limit`` bytes nor than its declared size
        (the library stops there); a lying header or a bad CRC is ``document_unreadable``."""
        info = self.entries[name]
        if info.file_size > limit:
            raise XdmRejected("zip_too_large")
        chunks: list[bytes] = []
        size = 0
        try:
            with self.zip.open(info) as stream:
                while chunk := stream.read(64 * 1024):
                    size += len(chunk)
                    if size > min(limit, info.file_size):
                        raise XdmRejected("zip_too_large")
                    chunks.append(chunk)
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError) as exc:
            raise XdmRejected("document_unreadable") from exc
        except RuntimeError as exc:  # encrypted entry
            raise XdmRejected("zip_encrypted") from exc
        return b"".join(chunks)


def find_metadata(names: Iterable[str]) -> list[str]:
    """Every ``IHE_XDM/<SUBSET>/METADATA.XML`` (any subset name; case-insensitive)."""
    found = []
    for name in names:
        parts = name.split("/")
        if (len(parts) == 3 and parts[0].upper() == XDM_ROOT
                and parts[2].upper() == METADATA_NAME and parts[1]):  # fmt: skip
            found.append(name)
    return sorted(found)


def _resolve(uri: str, metadata_path: str, zip_: _Zip) -> tuple[str | None, str | None]:
    """(path in the zip, problem): relative to METADATA.XML's folder first, then to
    ``IHE_XDM/`` (the DRIM-M convention). Absolute URIs, schemes and ``..`` are refused."""
    if not uri:
        return None, "document_uri_missing"
    if ("://" in uri or uri.startswith(("/", "\\")) or "\\" in uri or ":" in uri
            or ".." in uri.split("/")):  # fmt: skip
        return None, "document_uri_unsafe"
    folder = posixpath.dirname(metadata_path)
    root = metadata_path.split("/")[0]
    for base in (folder, root):
        candidate = posixpath.normpath(posixpath.join(base, uri))
        if not candidate.startswith(base + "/"):
            return None, "document_uri_unsafe"
        found = zip_.find(candidate)
        if found is not None:
            return found, None
    return None, "document_missing"


# --- the entry point ----------------------------------------------------------------------------


def _merge_patient(meta: Patient, cda: Patient | None) -> Patient:
    if cda is None:
        return meta
    return Patient(
        ins=meta.ins or cda.ins,
        ins_oid=meta.ins_oid if meta.ins else cda.ins_oid,
        family=meta.family or cda.family,
        given=meta.given or cda.given,
        birth_date=meta.birth_date or cda.birth_date,
        sex=meta.sex or cda.sex,
    )


def _merge_author(meta: Author, cda: Author | None) -> Author:
    if cda is None:
        return meta
    return Author(
        idnat=meta.idnat or cda.idnat,
        family=meta.family or cda.family,
        given=meta.given or cda.given,
        institution=meta.institution or cda.institution,
        institution_idnat=meta.institution_idnat or cda.institution_idnat,
    )


def _merge_code(meta: Code, cda: Code | None) -> Code:
    if meta.code or cda is None:
        return meta
    return cda


def _different_patients(meta: Patient, cda: Patient) -> bool:
    """Both sources name the patient and disagree on the INS or the birth date."""
    if meta.ins and cda.ins and meta.ins != cda.ins:
        return True
    return bool(meta.birth_date and cda.birth_date and meta.birth_date != cda.birth_date)


def _document(
    entry: MetadataEntry, metadata_path: str, zip_: _Zip, submission_author: Author
) -> XdmDocument:
    problems: list[str] = []
    path, problem = _resolve(entry.uri, metadata_path, zip_)
    content = None
    if problem:
        problems.append(problem)
    else:
        try:
            content = zip_.read(path, limit=zip_.limits.max_entry_size)
        except XdmRejected as exc:
            problems.append(exc.code)
    hash_verified = False
    if content is not None:
        size_ok = entry.size is not None and entry.size == len(content)
        hash_ok = bool(entry.hash) and hashlib.sha1(content).hexdigest() == entry.hash  # noqa: S324 - XDS says SHA-1
        if entry.size is None:
            problems.append("size_missing")
        elif not size_ok:
            problems.append("size_mismatch")
        if not entry.hash:
            problems.append("hash_missing")
        elif not hash_ok:
            problems.append("hash_mismatch")
        hash_verified = size_ok and hash_ok

    cda = None
    pdf = None
    if content is None:
        pass
    elif entry.mime_type == "application/pdf" or content.startswith(b"%PDF-"):
        pdf = content if content.startswith(b"%PDF-") else None
        if pdf is None:
            problems.append("pdf_invalid")
    elif entry.mime_type.endswith("xml") or content.lstrip()[:1] == b"<":
        try:
            cda = parse_cda_header(content, limits=zip_.limits)
        except XdmRejected as exc:
            problems.append(exc.code)
        else:
            problems.extend(cda.problems)
            pdf = cda.pdf

    patient = _merge_patient(entry.patient, cda.patient if cda else None)
    if cda is not None and _different_patients(entry.patient, cda.patient):
        problems.append("patient_mismatch")
    if patient.ins and patient.ins_oid in INS_OIDS and not ins_is_valid(patient.ins):
        problems.append("ins_invalid")
    author = _merge_author(entry.author, cda.author if cda else None)
    author = _merge_author(author, submission_author)
    return XdmDocument(
        entry_id=entry.entry_id,
        path=path or "",
        mime_type=entry.mime_type,
        patient=patient,
        author=author,
        type_code=_merge_code(entry.type_code, cda.code if cda else None),
        class_code=entry.class_code,
        confidentiality=entry.confidentiality,
        created_at=entry.creation_time or (cda.effective_time if cda else None),
        title=entry.title or (cda.title if cda else ""),
        size=len(content) if content is not None else None,
        hash_verified=hash_verified,
        replaces=bool(cda and cda.replaces),
        cda=cda,
        pdf=pdf,
        problems=tuple(dict.fromkeys(problems)),
    )


def read_xdm(
    data: bytes,
    *,
    x_mss_codecda: tuple[str, ...] = (),
    x_mss_ins: str | None = None,
    limits: XdmLimits = DEFAULT_LIMITS,
) -> XdmPackage:
    """Read an ``IHE_XDM.ZIP``. Raises ``XdmRejected`` when the zip or its METADATA.XML cannot
    be read safely; per-document problems are in the result. ``x_mss_codecda`` / ``x_mss_ins``
    are the message's ``X-MSS-CODECDA`` / ``X-MSS-INS`` headers, checked against the content."""
    zip_ = _Zip(data, limits)
    candidates = find_metadata(zip_.entries)
    if not candidates:
        raise XdmRejected("metadata_missing")
    problems: list[str] = []
    if len(candidates) > 1:
        problems.append("metadata_several")
    documents: list[XdmDocument] = []
    for metadata_path in candidates:
        if zip_.entries[metadata_path].file_size > limits.max_metadata_size:
            raise XdmRejected("metadata_too_large")
        metadata = parse_metadata(
            zip_.read(metadata_path, limit=limits.max_metadata_size), limits=limits
        )
        documents.extend(
            _document(entry, metadata_path, zip_, metadata.submission_author)
            for entry in metadata.entries
        )
    if not documents:
        problems.append("no_document")
    if len({d.patient.ins for d in documents if d.patient.ins}) > 1:
        problems.append("several_patients")
    if x_mss_ins == "O" and documents and not any(d.patient.ins for d in documents):
        problems.append("ins_missing")
    codes = {d.type_code.code for d in documents if d.type_code.code}
    if x_mss_codecda and codes and not codes & set(x_mss_codecda):
        problems.append("codecda_mismatch")
    if x_mss_codecda and documents and not codes:
        documents = [replace(d, type_code=Code(code=x_mss_codecda[0])) for d in documents]
    return XdmPackage(candidates[0], tuple(documents), tuple(problems))
