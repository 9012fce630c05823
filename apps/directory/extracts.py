"""Streaming readers of the national directory extracts (Annuaire Santé, MSSANTE.md §5).

* ``PS_LibreAcces_Personne_activite_<stamp>.txt`` (inside ``PS_LibreAcces_<stamp>.zip``): one
  row per activity of a professional, ~2 million rows;
* ``Extraction_Correspondance_MSSante_<stamp>.txt`` (alone in a zip): one row per mailbox.

Both are ``|``-delimited UTF-8 with one header line, and lines usually end with an extra ``|``
(accepted with or without it). Columns are found **by header name**: the activity file has had
48, 52 and 56 columns, so an unknown column is ignored (and reported in ``HeaderInfo``) and an
absent optional one reads as "". Ids stay strings. Values are stripped, never otherwise changed.

The header is checked when ``iter_activities``/``iter_mailboxes`` is *called*, before any row is
read: a file lacking a required column raises ``ExtractError`` while the caller has touched
nothing yet. Broken lines do not stop the reading: they come out as ``LineError`` items between
the records, numbered like an editor numbers them (the header is line 1)::

    with open_extract(path, "activities") as stream:
        rows = iter_activities(stream, name=path.name)  # ExtractError here, or never
        rows.header.generation  # 56, 52, 48 or None
        for item in rows:
            if isinstance(item, LineError): ...

Only a zip found corrupt mid-stream (bad CRC, truncated archive) raises ``ExtractError`` during
the iteration, after records were yielded: importers must stage what they read.
"""

import codecs
import io
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from operator import itemgetter
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Generic, Literal, TypeVar

from apps.core.exceptions import ApplicationError

Kind = Literal["activities", "mssante"]

# --- The files' columns (header names exactly as published, NFC) --------------------------------

# PS_LibreAcces_Personne_activite: header name -> ActivityRecord field, in the current (56) order.
ACTIVITY_COLUMNS: dict[str, str] = {
    "Type d'identifiant PP": "id_type",
    "Identifiant PP": "id_pp",
    "Identification nationale PP": "idnat",
    "Code civilité d'exercice": "civility_code_ex",
    "Libellé civilité d'exercice": "civility_label_ex",
    "Code civilité": "civility_code",
    "Libellé civilité": "civility_label",
    "Nom d'exercice": "last_name",
    "Prénom d'exercice": "first_name",
    "Code profession": "profession_code",
    "Libellé profession": "profession_label",
    "Code catégorie professionnelle": "category_code",
    "Libellé catégorie professionnelle": "category_label",
    "Code type savoir-faire": "skill_type_code",
    "Libellé type savoir-faire": "skill_type_label",
    "Code savoir-faire": "skill_code",
    "Libellé savoir-faire": "skill_label",
    "Code mode exercice": "mode_code",
    "Libellé mode exercice": "mode_label",
    "Numéro SIRET site": "siret",
    "Numéro SIREN site": "siren",
    "Numéro FINESS site": "finess_site",
    "Numéro FINESS établissement juridique": "finess_legal",
    "Identifiant technique de la structure": "structure_id",
    "Raison sociale site": "structure_name",
    "Enseigne commerciale site": "sign_name",
    "Complément destinataire (coord. structure)": "address_recipient",
    "Complément point géographique (coord. structure)": "address_place",
    "Numéro Voie (coord. structure)": "street_number",
    "Indice répétition voie (coord. structure)": "street_repeat",
    "Code type de voie (coord. structure)": "street_type_code",
    "Libellé type de voie (coord. structure)": "street_type_label",
    "Libellé Voie (coord. structure)": "street_label",
    "Mention distribution (coord. structure)": "distribution",
    "Bureau cedex (coord. structure)": "cedex",
    "Code postal (coord. structure)": "postcode",
    "Code commune (coord. structure)": "commune_code",
    "Libellé commune (coord. structure)": "town",
    "Code pays (coord. structure)": "country_code",
    "Libellé pays (coord. structure)": "country_label",
    "Téléphone (coord. structure)": "phone",
    "Téléphone 2 (coord. structure)": "phone2",
    "Télécopie (coord. structure)": "fax",
    "Adresse e-mail (coord. structure)": "email",
    "Code Département (structure)": "department_code",
    "Libellé Département (structure)": "department_label",
    "Ancien identifiant de la structure": "old_structure_id",
    "Autorité d'enregistrement": "registration_authority",
    "Code secteur d'activité": "sector_code",
    "Libellé secteur d'activité": "sector_label",
    "Code section tableau pharmaciens": "pharma_section_code",
    "Libellé section tableau pharmaciens": "pharma_section_label",
    "Code rôle": "role_code",
    "Libellé rôle": "role_label",
    "Code genre activité": "genre_code",
    "Libellé genre activité": "genre_label",
}
ACTIVITY_HEADER: tuple[str, ...] = tuple(ACTIVITY_COLUMNS)
# The published generations of the activity file: each is a prefix of the current header.
ACTIVITY_GENERATIONS: dict[int, tuple[str, ...]] = {
    56: ACTIVITY_HEADER,
    52: ACTIVITY_HEADER[:52],  # ends at "Libellé section tableau pharmaciens"
    48: ACTIVITY_HEADER[:48],  # ends at "Autorité d'enregistrement"
}
ACTIVITY_REQUIRED: tuple[str, ...] = (
    "Identification nationale PP",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Code profession",
)

# Extraction_Correspondance_MSSante: header name -> MailboxRecord field.
MAILBOX_COLUMNS: dict[str, str] = {
    "Type de BAL": "bal_type",
    "Adresse BAL": "address",
    "Type Identifiant PP": "id_type",
    "Identifiant PP": "id_pp",
    "Identification nationale PP": "idnat",
    "Type identifiant structure": "structure_id_type",
    "Identification Structure": "structure_id",
    "Service de rattachement": "service",
    "Civilité d'exercice": "civility",
    "Nom d'exercice": "last_name",
    "Prénom d'exercice": "first_name",
    "Catégorie profession": "category_code",
    "Libellé de catégorie profession": "category_label",
    "Code Profession": "profession_code",
    "Libellé Profession": "profession_label",
    "Code savoir-faire": "skill_code",
    "Libellé savoir-faire": "skill_label",
    "Dématérialisation": "dematerialisation",
    "Raison Sociale structure BAL": "structure_name",
    "Enseigne commerciale structure BAL": "sign_name",
    "L2COMPLEMENTLOCALISATION structure BAL": "address_place",
    "L3COMPLEMENTDISTRIBUTION structure BAL": "address_distribution",
    "L4NUMEROVOIE structure BAL": "street_number",
    "L4COMPLEMENTNUMEROVOIE structure BAL": "street_repeat",
    "NL4TYPEVOIE structure BAL": "street_type",
    "L4LIBELLEVOIE structure BAL": "street_label",
    "L5LIEUDITMENTION structure BAL": "locality",
    "L6LIGNEACHEMINEMENT structure BAL": "routing_line",
    "Code postal structure BAL": "postcode",
    "Département structure BAL": "department",
    "Pays structure BAL": "country",
}
MAILBOX_HEADER: tuple[str, ...] = tuple(MAILBOX_COLUMNS)
MAILBOX_REQUIRED: tuple[str, ...] = ("Type de BAL", "Adresse BAL")

# Inside the official zips, the member to read starts with:
ZIP_MEMBER_PREFIXES: dict[str, str] = {
    "activities": "PS_LibreAcces_Personne_activite",
    "mssante": "Extraction_Correspondance_MSSante",
}
KIND_LABELS: dict[str, str] = {
    "activities": "PS_LibreAcces_Personne_activite (activités)",
    "mssante": "Extraction_Correspondance_MSSante (BAL MSSanté)",
}

HEADER_MAX_BYTES = 64 * 1024  # the real headers are about 2 KB; anything longer is another file

# LineError reasons (stable strings: importers count them).
REASON_ENCODING = "encodage invalide (UTF-8 attendu)"
REASON_TRUNCATED = "ligne tronquée"
REASON_NO_IDNAT = "identifiant national manquant"
REASON_NO_BAL_TYPE = "type de BAL manquant"
REASON_BAD_ADDRESS = "adresse BAL invalide"


class ExtractError(ApplicationError):
    """The file cannot be read as the extract it should be; nothing of it should be used."""


@dataclass(frozen=True, slots=True)
class LineError:
    line: int  # 1-based, the header being line 1
    reason: str


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    columns: tuple[str, ...]  # as read (NFC, stripped), without the trailing empty field
    generation: int | None  # 56/52/48 when the activity header is exactly a known one
    unknown_columns: tuple[str, ...]  # present but not read (new columns, duplicates)
    missing_columns: tuple[str, ...] = ()  # known optional columns absent (they read as "")


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    id_type: str
    id_pp: str
    idnat: str
    civility_code_ex: str
    civility_label_ex: str
    civility_code: str
    civility_label: str
    last_name: str
    first_name: str
    profession_code: str
    profession_label: str
    category_code: str
    category_label: str
    skill_type_code: str
    skill_type_label: str
    skill_code: str
    skill_label: str
    mode_code: str
    mode_label: str
    siret: str
    siren: str
    finess_site: str
    finess_legal: str
    structure_id: str
    structure_name: str
    sign_name: str
    address_recipient: str
    address_place: str
    street_number: str
    street_repeat: str
    street_type_code: str
    street_type_label: str
    street_label: str
    distribution: str
    cedex: str
    postcode: str
    commune_code: str
    town: str
    country_code: str
    country_label: str
    phone: str
    phone2: str
    fax: str
    email: str
    department_code: str
    department_label: str
    old_structure_id: str
    registration_authority: str
    sector_code: str
    sector_label: str
    pharma_section_code: str
    pharma_section_label: str
    role_code: str
    role_label: str
    genre_code: str
    genre_label: str


@dataclass(frozen=True, slots=True)
class MailboxRecord:
    bal_type: str
    address: str
    id_type: str
    id_pp: str
    idnat: str
    structure_id_type: str
    structure_id: str
    service: str
    civility: str
    last_name: str
    first_name: str
    category_code: str
    category_label: str
    profession_code: str
    profession_label: str
    skill_code: str
    skill_label: str
    dematerialisation: str
    structure_name: str
    sign_name: str
    address_place: str
    address_distribution: str
    street_number: str
    street_repeat: str
    street_type: str
    street_label: str
    locality: str
    routing_line: str
    postcode: str
    department: str
    country: str


R = TypeVar("R", ActivityRecord, MailboxRecord)


class ExtractReader(Generic[R]):
    """What ``iter_activities``/``iter_mailboxes`` return: the validated ``header``, and an
    iterator of records and ``LineError`` items (single pass)."""

    __slots__ = ("_rows", "header")

    def __init__(self, header: HeaderInfo, rows: Iterator[R | LineError]) -> None:
        self.header = header
        self._rows = rows

    def __iter__(self) -> Iterator[R | LineError]:
        return self._rows  # the generator itself: a for loop runs at full speed

    def __next__(self) -> R | LineError:
        return next(self._rows)


# --- Opening -------------------------------------------------------------------------------------


@contextmanager
def open_extract(path: Path, kind: Kind) -> Iterator[BinaryIO]:
    """A binary stream of the extract at ``path``: the ``.txt`` itself, or the right member of
    an official ``.zip`` (read as a stream, never loaded whole)."""
    path = Path(path)
    if path.suffix.lower() != ".zip":
        try:
            stream = path.open("rb", buffering=1 << 20)
        except OSError as exc:
            raise ExtractError(f"Impossible de lire {path.name} : {exc.strerror}.") from exc
        with stream:
            yield stream
        return
    try:
        archive = zipfile.ZipFile(path)
    except OSError as exc:
        raise ExtractError(f"Impossible de lire {path.name} : {exc.strerror}.") from exc
    except zipfile.BadZipFile as exc:
        raise ExtractError(f"{path.name} n'est pas une archive zip valide.") from exc
    with archive:
        member = _zip_member(archive, kind=kind, name=path.name)
        # zipfile's own readline is Python code; a BufferedReader splits lines in C (~2 s less
        # per 2 million lines). The member still decompresses (and checks its CRC) as it goes.
        with archive.open(member) as raw, io.BufferedReader(raw, buffer_size=1 << 20) as stream:
            yield stream


def _zip_member(archive: zipfile.ZipFile, *, kind: Kind, name: str) -> zipfile.ZipInfo:
    prefix = ZIP_MEMBER_PREFIXES[kind]
    members = [info for info in archive.infolist() if not info.is_dir()]
    found = [info for info in members if PurePosixPath(info.filename).name.startswith(prefix)]
    if len(found) == 1:
        return found[0]
    listing = ", ".join(info.filename for info in members[:10]) or "aucun fichier"
    if not found:
        raise ExtractError(
            f"L'archive {name} ne contient pas de fichier {prefix}_….txt (contenu : {listing})."
        )
    raise ExtractError(f"L'archive {name} contient plusieurs fichiers {prefix}_… ({listing}).")


# --- Header --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to read the rows of one file, computed once from its header."""

    header: HeaderInfo
    width: int  # number of columns of the header
    pick: Callable[[list[str]], tuple[str, ...]]  # fields -> values in record field order
    build: Callable[[tuple[str, ...]], object]
    checks: tuple[tuple[int, Callable[[str], bool], str], ...]  # (value index, is_bad, reason)


def read_header(stream: BinaryIO, *, kind: Kind, name: str) -> HeaderInfo:
    """Read and check the header line of ``stream`` (consumes it). Raises ExtractError."""
    return _read_plan(stream, kind=kind, name=name).header


def _read_plan(stream: BinaryIO, *, kind: Kind, name: str) -> _Plan:
    try:
        raw = stream.readline(HEADER_MAX_BYTES + 1)
    except _ARCHIVE_ERRORS as exc:  # a small member is read (and CRC-checked) at once
        raise _corrupt(name, exc, line=1) from exc
    if len(raw) > HEADER_MAX_BYTES:
        raise ExtractError(
            f"La première ligne du fichier {name} dépasse {HEADER_MAX_BYTES // 1024} Kio : "
            "ce n'est pas un extrait de l'annuaire.",
            extra={"file": name},
        )
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExtractError(
            f"L'en-tête du fichier {name} n'est pas en UTF-8 : ce n'est pas un extrait "
            "de l'annuaire au format attendu.",
            extra={"file": name},
        ) from exc
    text = text.rstrip("\r\n")
    if not text.strip():
        raise ExtractError(f"Le fichier {name} est vide (pas de ligne d'en-tête).")
    columns = [unicodedata.normalize("NFC", cell).strip() for cell in text.split("|")]
    if len(columns) > 1 and columns[-1] == "":
        columns.pop()  # the trailing "|"

    if kind == "activities":
        mapping, required, record_type = ACTIVITY_COLUMNS, ACTIVITY_REQUIRED, ActivityRecord
    else:
        mapping, required, record_type = MAILBOX_COLUMNS, MAILBOX_REQUIRED, MailboxRecord
    position: dict[str, int] = {}
    unknown: list[str] = []
    for index, column in enumerate(columns):
        if column in mapping and column not in position:
            position[column] = index
        elif column:
            unknown.append(column)
    missing_required = [column for column in required if column not in position]
    if missing_required:
        raise ExtractError(
            f"Le fichier {name} n'est pas un extrait {KIND_LABELS[kind]} utilisable : "
            f"colonne(s) manquante(s) : {', '.join(missing_required)}.",
            extra={"file": name, "missing_columns": missing_required},
        )

    generation = None
    if kind == "activities":
        generation = next(
            (gen for gen, known in ACTIVITY_GENERATIONS.items() if tuple(columns) == known), None
        )
    header = HeaderInfo(
        columns=tuple(columns),
        generation=generation,
        unknown_columns=tuple(unknown),
        missing_columns=tuple(column for column in mapping if column not in position),
    )
    width = len(columns)
    by_field = {mapping[column]: index for column, index in position.items()}
    names = [f.name for f in fields(record_type)]
    # An absent column reads index ``width``: the empty field after the trailing "|" (or the
    # one appended to a line that lacks it).
    pick = itemgetter(*(by_field.get(field_name, width) for field_name in names))
    if kind == "activities":
        checks = ((names.index("idnat"), _is_empty, REASON_NO_IDNAT),)
    else:
        checks = (
            (names.index("bal_type"), _is_empty, REASON_NO_BAL_TYPE),
            (names.index("address"), _lacks_at, REASON_BAD_ADDRESS),
        )
    return _Plan(header, width, pick, _constructor(record_type), checks)


def _is_empty(value: str) -> bool:
    return not value


def _lacks_at(value: str) -> bool:
    return "@" not in value


def _constructor(record_type: type) -> Callable[[tuple[str, ...]], object]:
    """Build a frozen slotted dataclass from values in field order, setting the slots directly:
    the generated frozen ``__init__`` goes through ``object.__setattr__`` per field and is twice
    as slow, which shows over two million rows of 56 fields. Same objects either way."""
    setters = tuple(getattr(record_type, f.name).__set__ for f in fields(record_type))
    new = object.__new__

    def build(values: tuple[str, ...]) -> object:
        record = new(record_type)
        for setter, value in zip(setters, values, strict=True):
            setter(record, value)
        return record

    return build


# --- Rows ----------------------------------------------------------------------------------------


def iter_activities(stream: BinaryIO, *, name: str) -> ExtractReader[ActivityRecord]:
    """Check the header of an activity file now (ExtractError), then read its rows lazily."""
    plan = _read_plan(stream, kind="activities", name=name)
    return ExtractReader(plan.header, _rows(stream, plan, name))


def iter_mailboxes(stream: BinaryIO, *, name: str) -> ExtractReader[MailboxRecord]:
    """Check the header of a mailbox file now (ExtractError), then read its rows lazily."""
    plan = _read_plan(stream, kind="mssante", name=name)
    return ExtractReader(plan.header, _rows(stream, plan, name))


def _field_count(fields_: list[str]) -> int:
    """How many fields a line holds, its trailing "|" being a terminator, not a field."""
    return len(fields_) - 1 if fields_[-1] == "" else len(fields_)


def _rows(stream: BinaryIO, plan: _Plan, name: str) -> Iterator:
    width = plan.width
    width_with_bar = width + 1
    pick, build, checks = plan.pick, plan.build, plan.checks
    strip = str.strip
    line_number = 1
    try:
        for raw in stream:
            line_number += 1
            body = raw.rstrip(b"\r\n")
            if not body:
                continue
            try:
                line = body.decode("utf-8")
            except UnicodeDecodeError:
                # A last line cut in the middle of a character is a truncation too.
                complete = raw.endswith(b"\n")
                yield LineError(line_number, REASON_ENCODING if complete else REASON_TRUNCATED)
                continue
            values = line.split("|")
            count = len(values)
            if count == width_with_bar and not values[-1].strip():
                pass  # the usual case: a trailing "|"
            elif count == width:
                values.append("")  # no trailing "|" (some copies of the mailbox file)
            elif line.isspace():
                continue
            elif count < width and not raw.endswith(b"\n"):
                yield LineError(line_number, REASON_TRUNCATED)
                continue
            else:
                reason = f"{_field_count(values)} champs au lieu de {width}"
                yield LineError(line_number, reason)
                continue
            record_values = tuple(map(strip, pick(values)))
            for index, is_bad, reason in checks:
                if is_bad(record_values[index]):
                    yield LineError(line_number, reason)
                    break
            else:
                yield build(record_values)
    except _ARCHIVE_ERRORS as exc:
        raise _corrupt(name, exc, line=line_number) from exc


_ARCHIVE_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error)


def _corrupt(name: str, exc: Exception, *, line: int) -> ExtractError:
    return ExtractError(
        f"L'archive de {name} est corrompue ou tronquée (ligne {line}) : {exc}",
        extra={"file": name, "line": line},
    )


# --- Search keys ---------------------------------------------------------------------------------

# Letters NFKD does not decompose into a base letter plus marks.
_FOLD_EXTRA = str.maketrans(
    {"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_search(text: str) -> str:
    """A search key: casefolded, accents stripped, runs of anything but ASCII letters and
    digits collapsed to one space. Always ASCII. "Lefèvre-Dupont" → "lefevre dupont",
    "Œuvre" → "oeuvre", "Straße" → "strasse"."""
    folded = text.casefold()
    if not folded.isascii():
        folded = unicodedata.normalize("NFKD", folded.translate(_FOLD_EXTRA))
        folded = "".join(char for char in folded if not unicodedata.combining(char))
    return _NOT_ALNUM.sub(" ", folded).strip()
