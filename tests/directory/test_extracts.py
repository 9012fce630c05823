"""The streaming readers of the directory extracts (no database)."""

import unicodedata
import zipfile
from dataclasses import fields
from pathlib import Path

import pytest

from apps.core.exceptions import ApplicationError
from apps.directory import extracts
from apps.directory.extracts import (
    ActivityRecord,
    ExtractError,
    LineError,
    MailboxRecord,
    iter_activities,
    iter_mailboxes,
    normalize_search,
    open_extract,
    read_header,
)
from apps.directory.sample import write_sample

FIXTURES = Path(__file__).parent / "fixtures"

# Copied from MSSANTE.md §5, independently of the module's constants.
ACTIVITY_HEADER_56 = (
    "Type d'identifiant PP|Identifiant PP|Identification nationale PP|Code civilité d'exercice|"
    "Libellé civilité d'exercice|Code civilité|Libellé civilité|Nom d'exercice|Prénom d'exercice|"
    "Code profession|Libellé profession|Code catégorie professionnelle|"
    "Libellé catégorie professionnelle|Code type savoir-faire|Libellé type savoir-faire|"
    "Code savoir-faire|Libellé savoir-faire|Code mode exercice|Libellé mode exercice|"
    "Numéro SIRET site|Numéro SIREN site|Numéro FINESS site|"
    "Numéro FINESS établissement juridique|Identifiant technique de la structure|"
    "Raison sociale site|Enseigne commerciale site|Complément destinataire (coord. structure)|"
    "Complément point géographique (coord. structure)|Numéro Voie (coord. structure)|"
    "Indice répétition voie (coord. structure)|Code type de voie (coord. structure)|"
    "Libellé type de voie (coord. structure)|Libellé Voie (coord. structure)|"
    "Mention distribution (coord. structure)|Bureau cedex (coord. structure)|"
    "Code postal (coord. structure)|Code commune (coord. structure)|"
    "Libellé commune (coord. structure)|Code pays (coord. structure)|"
    "Libellé pays (coord. structure)|Téléphone (coord. structure)|"
    "Téléphone 2 (coord. structure)|Télécopie (coord. structure)|"
    "Adresse e-mail (coord. structure)|Code Département (structure)|"
    "Libellé Département (structure)|Ancien identifiant de la structure|"
    "Autorité d'enregistrement|Code secteur d'activité|Libellé secteur d'activité|"
    "Code section tableau pharmaciens|Libellé section tableau pharmaciens|Code rôle|"
    "Libellé rôle|Code genre activité|Libellé genre activité|"
)
MAILBOX_HEADER = (
    "Type de BAL|Adresse BAL|Type Identifiant PP|Identifiant PP|Identification nationale PP|"
    "Type identifiant structure|Identification Structure|Service de rattachement|"
    "Civilité d'exercice|Nom d'exercice|Prénom d'exercice|Catégorie profession|"
    "Libellé de catégorie profession|Code Profession|Libellé Profession|Code savoir-faire|"
    "Libellé savoir-faire|Dématérialisation|Raison Sociale structure BAL|"
    "Enseigne commerciale structure BAL|L2COMPLEMENTLOCALISATION structure BAL|"
    "L3COMPLEMENTDISTRIBUTION structure BAL|L4NUMEROVOIE structure BAL|"
    "L4COMPLEMENTNUMEROVOIE structure BAL|NL4TYPEVOIE structure BAL|"
    "L4LIBELLEVOIE structure BAL|L5LIEUDITMENTION structure BAL|"
    "L6LIGNEACHEMINEMENT structure BAL|Code postal structure BAL|Département structure BAL|"
    "Pays structure BAL"
)
COLUMNS_56 = ACTIVITY_HEADER_56.split("|")[:-1]
COLUMNS_52 = COLUMNS_56[: COLUMNS_56.index("Libellé section tableau pharmaciens") + 1]
COLUMNS_48 = COLUMNS_56[: COLUMNS_56.index("Autorité d'enregistrement") + 1]
MAILBOX_COLUMNS = MAILBOX_HEADER.split("|")


def activity_line(columns: list[str], **values: str) -> str:
    """A row for ``columns`` (by header name), with a trailing "|"."""
    row = dict.fromkeys(columns, "")
    row.update({"Identification nationale PP": "810001234567", "Nom d'exercice": "MARTIN"})
    row.update({key.replace("_", " "): value for key, value in values.items()})
    return "|".join(row[column] for column in columns) + "|"


def mailbox_line(address: str = "claire.morel@medecin.mssante.fr", bal_type: str = "PER") -> str:
    row = dict.fromkeys(MAILBOX_COLUMNS, "")
    row.update({"Type de BAL": bal_type, "Adresse BAL": address, "Nom d'exercice": "MOREL"})
    return "|".join(row[column] for column in MAILBOX_COLUMNS) + "|"


def write(tmp_path: Path, content: bytes | str, name: str = "extract.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def read_all(path: Path, kind: str = "activities") -> list:
    reader = iter_activities if kind == "activities" else iter_mailboxes
    with open_extract(path, kind) as stream:
        return list(reader(stream, name=path.name))


def naive_rows(path: Path) -> list[dict[str, str]]:
    """The file read the obvious way, to check the reader's by-name mapping against."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("|")
    return [dict(zip(header, line.split("|"), strict=True)) for line in lines[1:]]


# --- Column tables ---------------------------------------------------------------------------


def test_known_headers_are_the_published_ones():
    assert list(extracts.ACTIVITY_HEADER) == COLUMNS_56
    assert list(extracts.ACTIVITY_GENERATIONS[52]) == COLUMNS_52
    assert list(extracts.ACTIVITY_GENERATIONS[48]) == COLUMNS_48
    assert list(extracts.MAILBOX_HEADER) == MAILBOX_COLUMNS
    assert all(unicodedata.is_normalized("NFC", c) for c in extracts.ACTIVITY_COLUMNS)


@pytest.mark.parametrize(
    ("record_type", "mapping"),
    [(ActivityRecord, extracts.ACTIVITY_COLUMNS), (MailboxRecord, extracts.MAILBOX_COLUMNS)],
)
def test_every_column_has_its_own_record_field(record_type, mapping):
    assert [f.name for f in fields(record_type)] == list(mapping.values())


# --- Whole files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "columns"), [(56, COLUMNS_56), (52, COLUMNS_52), (48, COLUMNS_48)]
)
def test_each_generation_is_read_by_header_name(tmp_path, generation, columns):
    files = write_sample(people=300, out_dir=tmp_path, generation=generation)
    with open_extract(files.activities_path, "activities") as stream:
        reader = iter_activities(stream, name=files.activities_path.name)
        assert reader.header.generation == generation
        assert reader.header.columns == tuple(columns)
        assert reader.header.unknown_columns == ()
        records = list(reader)

    assert len(records) == files.activity_rows
    assert not [r for r in records if isinstance(r, LineError)]
    for record, raw in zip(records, naive_rows(files.activities_path), strict=True):
        for column, field_name in extracts.ACTIVITY_COLUMNS.items():
            assert getattr(record, field_name) == raw.get(column, "").strip()
    roles = {r.role_code for r in records}
    sectors = {r.sector_code for r in records}
    assert (roles != {""}) is (generation == 56)
    assert (sectors != {""}) is (generation >= 52)


def test_committed_fixture_pair_reads_without_errors():
    activities = read_all(FIXTURES / "PS_LibreAcces_Personne_activite_202611280000.txt")
    mailboxes = read_all(FIXTURES / "Extraction_Correspondance_MSSante_202611280000.txt", "mssante")
    assert len(activities) == 75
    assert len(mailboxes) == 17
    assert all(isinstance(r, ActivityRecord) for r in activities)
    assert all(isinstance(r, MailboxRecord) for r in mailboxes)
    people = {r.idnat for r in activities}
    assert len(people) == 60
    assert {r.idnat for r in mailboxes if r.bal_type == "PER"} <= people


def test_mailbox_file_reads_the_same_with_or_without_trailing_bar(tmp_path):
    with_bar = write_sample(people=200, out_dir=tmp_path / "a")
    without = write_sample(people=200, out_dir=tmp_path / "b", mailbox_trailing_bar=False)
    assert without.mssante_path.read_bytes().split(b"\n")[1].endswith(b"FRANCE")
    assert with_bar.mssante_path.read_bytes().split(b"\n")[1].endswith(b"FRANCE|")
    first = read_all(with_bar.mssante_path, "mssante")
    assert first == read_all(without.mssante_path, "mssante")
    assert len(first) == with_bar.mailbox_rows
    assert all(isinstance(r, MailboxRecord) for r in first)


def test_official_zips_are_read_as_streams(tmp_path):
    plain = write_sample(people=150, out_dir=tmp_path / "txt")
    zipped = write_sample(people=150, out_dir=tmp_path / "zip", zip=True)
    assert zipped.activities_path.name == "PS_LibreAcces_202611280000.zip"
    assert read_all(zipped.activities_path) == read_all(plain.activities_path)
    assert read_all(zipped.mssante_path, "mssante") == read_all(plain.mssante_path, "mssante")


def test_zip_member_is_chosen_by_name_among_the_siblings(tmp_path):
    path = tmp_path / "PS_LibreAcces_202611280000.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("PS_LibreAcces_SavoirFaire_202611280000.txt", "Autre|fichier|\n")
        archive.writestr(
            "PS_LibreAcces_Personne_activite_202611280000.txt",
            ACTIVITY_HEADER_56 + "\n" + activity_line(COLUMNS_56) + "\n",
        )
        archive.writestr("PS_LibreAcces_Dipl_AutExerc_202611280000.txt", "x|\n")
    [record] = read_all(path)
    assert record.last_name == "MARTIN"


def test_zip_without_the_expected_member_is_refused(tmp_path):
    path = tmp_path / "Extraction_Correspondance_MSSante_202611280000.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("autre.txt", MAILBOX_HEADER + "\n")
    expected = pytest.raises(ExtractError, match="Extraction_Correspondance_MSSante")
    with expected as caught, open_extract(path, "mssante"):
        pass
    assert "autre.txt" in caught.value.message


def test_zip_with_two_candidate_members_is_refused(tmp_path):
    path = tmp_path / "PS_LibreAcces.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("PS_LibreAcces_Personne_activite_1.txt", ACTIVITY_HEADER_56 + "\n")
        archive.writestr("PS_LibreAcces_Personne_activite_2.txt", ACTIVITY_HEADER_56 + "\n")
    with pytest.raises(ExtractError, match="plusieurs"), open_extract(path, "activities"):
        pass


def test_a_file_that_is_not_a_zip_or_is_missing_is_an_extract_error(tmp_path):
    fake = write(tmp_path, "not a zip", name="PS_LibreAcces_1.zip")
    with pytest.raises(ExtractError, match="archive zip"), open_extract(fake, "activities"):
        pass
    missing = tmp_path / "absent.txt"
    with pytest.raises(ExtractError, match=r"absent\.txt"), open_extract(missing, "activities"):
        pass


def corrupt_zip(tmp_path: Path, rows: int) -> Path:
    """An activity zip whose member's CRC no longer matches (checked when reading its end)."""
    path = tmp_path / "PS_LibreAcces.zip"
    body = ACTIVITY_HEADER_56 + "\n" + "\n".join(activity_line(COLUMNS_56) for _ in range(rows))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("PS_LibreAcces_Personne_activite_1.txt", body + "\n")
    data = bytearray(path.read_bytes())
    spot = data.index(b"MARTIN", len(data) // 2)
    data[spot : spot + 6] = b"MARTYN"  # same length, wrong CRC
    path.write_bytes(bytes(data))
    return path


def test_a_corrupt_zip_member_fails_loudly_while_reading(tmp_path):
    path = corrupt_zip(tmp_path, rows=30_000)  # more than the 1 MB read buffer
    read: list = []
    with open_extract(path, "activities") as stream:
        reader = iter_activities(stream, name=path.name)
        with pytest.raises(ExtractError, match="corrompue"):
            read.extend(reader)  # keeps what came before the error
    assert 0 < len(read) < 30_000


def test_a_small_corrupt_zip_is_refused_with_its_header(tmp_path):
    path = corrupt_zip(tmp_path, rows=50)
    refused = pytest.raises(ExtractError, match="corrompue")
    with open_extract(path, "activities") as stream, refused:
        iter_activities(stream, name=path.name)


# --- Headers -------------------------------------------------------------------------------------


def test_extract_error_is_an_application_error():
    assert issubclass(ExtractError, ApplicationError)


def test_empty_file_is_refused_when_called(tmp_path):
    for content in (b"", b"\n", codecs_bom() + b"\r\n"):
        path = write(tmp_path, content)
        refused = pytest.raises(ExtractError, match="vide")
        with open_extract(path, "activities") as stream, refused as caught:
            iter_activities(stream, name="PS_vide.txt")
        assert "PS_vide.txt" in caught.value.message


def codecs_bom() -> bytes:
    return "\ufeff".encode()


def test_missing_required_column_is_refused_before_any_row_is_read(tmp_path):
    columns = [c for c in COLUMNS_56 if c != "Code profession"]
    path = write(tmp_path, "|".join(columns) + "|\n" + activity_line(columns) + "\n")
    with open_extract(path, "activities") as stream:
        with pytest.raises(ExtractError) as caught:
            iter_activities(stream, name="PS_LibreAcces_Personne_activite_X.txt")
        assert stream.readline().decode() == activity_line(columns) + "\n"  # no row consumed
    message = caught.value.message
    assert "PS_LibreAcces_Personne_activite_X.txt" in message
    assert "Code profession" in message
    assert caught.value.extra["missing_columns"] == ["Code profession"]


def test_mailbox_file_given_as_activities_is_refused(tmp_path):
    path = write(tmp_path, MAILBOX_HEADER + "\n" + mailbox_line() + "\n")
    with open_extract(path, "activities") as stream, pytest.raises(ExtractError) as caught:
        iter_activities(stream, name=path.name)
    assert "Identification nationale PP" not in caught.value.extra["missing_columns"]
    assert "Code profession" in caught.value.extra["missing_columns"]


def test_mailbox_file_needs_type_and_address(tmp_path):
    columns = [c for c in MAILBOX_COLUMNS if c != "Adresse BAL"]
    path = write(tmp_path, "|".join(columns) + "\n")
    with open_extract(path, "mssante") as stream, pytest.raises(ExtractError, match="Adresse BAL"):
        iter_mailboxes(stream, name=path.name)


def test_header_not_in_utf8_is_refused(tmp_path):
    path = write(tmp_path, ACTIVITY_HEADER_56.encode("latin-1") + b"\n")
    with open_extract(path, "activities") as stream, pytest.raises(ExtractError, match="UTF-8"):
        iter_activities(stream, name=path.name)


def test_a_file_without_line_breaks_is_refused_without_reading_it_whole(tmp_path):
    path = write(tmp_path, b"\x00\x01" * 100_000)
    with open_extract(path, "activities") as stream, pytest.raises(ExtractError, match="Kio"):
        iter_activities(stream, name=path.name)


def test_unknown_columns_are_reported_and_ignored(tmp_path):
    columns = [*COLUMNS_56]
    columns[53:53] = ["Code fonction", "Libellé fonction"]  # the unconfirmed variant
    line = activity_line(columns, **{"Code fonction": "FON-01", "Code rôle": "FON-05"})
    path = write(tmp_path, "|".join(columns) + "|\n" + line + "\n")
    with open_extract(path, "activities") as stream:
        reader = iter_activities(stream, name=path.name)
        [record] = list(reader)
    assert reader.header.unknown_columns == ("Code fonction", "Libellé fonction")
    assert reader.header.generation is None
    assert record.role_code == "FON-05"


def test_columns_are_found_wherever_they_are_and_missing_optional_ones_read_empty(tmp_path):
    columns = ["Nom d'exercice", "Code profession", "Prénom d'exercice"]
    columns += ["Identification nationale PP"]
    path = write(tmp_path, "|".join(columns) + "\nLEFÈVRE|40|Hélène|810001234567\n")
    with open_extract(path, "activities") as stream:
        reader = iter_activities(stream, name=path.name)
        [record] = list(reader)
    assert (record.last_name, record.first_name, record.profession_code, record.idnat) == (
        "LEFÈVRE",
        "Hélène",
        "40",
        "810001234567",
    )
    assert record.town == record.genre_label == ""
    assert "Libellé commune (coord. structure)" in reader.header.missing_columns


def test_header_names_are_compared_after_nfc_and_strip(tmp_path):
    header = unicodedata.normalize("NFD", "| ".join(COLUMNS_56)) + "|"
    path = write(tmp_path, header + "\n" + activity_line(COLUMNS_56) + "\n")
    with open_extract(path, "activities") as stream:
        header_info = read_header(stream, kind="activities", name=path.name)
        assert header_info.generation == 56
        assert stream.readline().startswith(b"|")  # only the header was consumed


def test_bom_and_crlf_are_tolerated(tmp_path):
    content = (
        codecs_bom() + (ACTIVITY_HEADER_56 + "\r\n" + activity_line(COLUMNS_56) + "\r\n").encode()
    )
    path = write(tmp_path, content)
    with open_extract(path, "activities") as stream:
        reader = iter_activities(stream, name=path.name)
        assert reader.header.generation == 56
        [record] = list(reader)
    assert record.genre_label == ""
    assert record.idnat == "810001234567"


# --- Broken lines ------------------------------------------------------------------------------


def test_bad_utf8_line_is_reported_with_its_number_and_reading_goes_on(tmp_path):
    good = activity_line(COLUMNS_56).encode()
    bad = good.replace(b"MARTIN", b"MART\xc9")  # a Latin-1 "É"
    path = write(
        tmp_path, ACTIVITY_HEADER_56.encode() + b"\n" + b"\n".join([good, bad, good]) + b"\n"
    )
    items = read_all(path)
    assert items[1] == LineError(line=3, reason="encodage invalide (UTF-8 attendu)")
    assert isinstance(items[0], ActivityRecord)
    assert isinstance(items[2], ActivityRecord)


def test_wrong_field_counts_are_reported(tmp_path):
    good = activity_line(COLUMNS_56)
    too_many = good + "extra|"
    too_few = "|".join(good.split("|")[:50]) + "|"
    no_bar_too_many = good + "extra"
    lines = [too_many, too_few, no_bar_too_many, good]
    path = write(tmp_path, ACTIVITY_HEADER_56 + "\n" + "\n".join(lines) + "\n")
    items = read_all(path)
    assert items[:3] == [
        LineError(2, "57 champs au lieu de 56"),
        LineError(3, "50 champs au lieu de 56"),
        LineError(4, "57 champs au lieu de 56"),
    ]
    assert isinstance(items[3], ActivityRecord)


def test_truncated_last_line_is_reported(tmp_path):
    good = activity_line(COLUMNS_56)
    path = write(tmp_path, ACTIVITY_HEADER_56 + "\n" + good + "\n" + good[:40])
    assert read_all(path)[1:] == [LineError(3, "ligne tronquée")]
    # Cut in the middle of a two-byte character:
    cut = (ACTIVITY_HEADER_56 + "\n" + "Hélène|").encode()[:-6]
    assert read_all(write(tmp_path, cut)) == [LineError(2, "ligne tronquée")]


def test_last_line_without_newline_but_complete_is_read(tmp_path):
    path = write(tmp_path, ACTIVITY_HEADER_56 + "\n" + activity_line(COLUMNS_56))
    assert isinstance(read_all(path)[0], ActivityRecord)


def test_blank_lines_are_skipped_but_counted(tmp_path):
    good, bad = activity_line(COLUMNS_56), activity_line(COLUMNS_56)[:-30] + "|"
    path = write(tmp_path, ACTIVITY_HEADER_56 + "\n\n" + good + "\n   \n\r\n" + bad + "\n")
    items = read_all(path)
    assert len(items) == 2
    assert isinstance(items[0], ActivityRecord)
    assert isinstance(items[1], LineError)
    assert items[1].line == 6


def test_row_checks(tmp_path):
    no_idnat = activity_line(COLUMNS_56, **{"Identification nationale PP": " "})
    path = write(tmp_path, ACTIVITY_HEADER_56 + "\n" + no_idnat + "\n")
    assert read_all(path) == [LineError(2, "identifiant national manquant")]

    lines = [
        mailbox_line("sans-arobase.mssante.fr"),
        mailbox_line(bal_type=""),
        mailbox_line("secretariat.radiologie@ch-laval.mssante.fr", bal_type="ORG"),
        mailbox_line("app@x.mssante.fr", bal_type="APP"),
    ]
    path = write(tmp_path, MAILBOX_HEADER + "|\n" + "\n".join(lines) + "\n")
    items = read_all(path, "mssante")
    assert items[:2] == [LineError(2, "adresse BAL invalide"), LineError(3, "type de BAL manquant")]
    assert [(r.bal_type, r.idnat) for r in items[2:]] == [("ORG", ""), ("APP", "")]


def test_values_are_stripped_and_ids_kept_as_strings(tmp_path):
    line = activity_line(
        COLUMNS_56,
        **{
            "Nom d'exercice": "  LE GALL ",
            "Identification nationale PP": "0012345678",
            "Code postal (coord. structure)": "01000",
        },
    )
    [record] = read_all(write(tmp_path, ACTIVITY_HEADER_56 + "\n" + line + "\n"))
    assert record.last_name == "LE GALL"
    assert record.idnat == "0012345678"
    assert record.postcode == "01000"


def test_broken_fixtures_give_the_documented_errors():
    items = read_all(FIXTURES / "Extraction_Correspondance_MSSante_broken.txt", "mssante")
    errors = [i for i in items if isinstance(i, LineError)]
    assert errors == [
        LineError(3, "encodage invalide (UTF-8 attendu)"),
        LineError(4, "32 champs au lieu de 31"),
        LineError(6, "adresse BAL invalide"),
        LineError(7, "type de BAL manquant"),
        LineError(9, "ligne tronquée"),
    ]
    assert len(items) - len(errors) == 2

    items = read_all(FIXTURES / "PS_LibreAcces_Personne_activite_broken.txt")
    errors = [i for i in items if isinstance(i, LineError)]
    assert errors == [
        LineError(3, "identifiant national manquant"),
        LineError(4, "40 champs au lieu de 56"),
        LineError(6, "encodage invalide (UTF-8 attendu)"),
    ]
    assert len(items) - len(errors) == 3


def test_records_are_frozen_and_equal_to_their_constructor(tmp_path):
    [record] = read_all(write(tmp_path, ACTIVITY_HEADER_56 + "\n" + activity_line(COLUMNS_56)))
    values = [getattr(record, f.name) for f in fields(ActivityRecord)]
    assert record == ActivityRecord(*values)
    assert hash(record) == hash(ActivityRecord(*values))
    with pytest.raises(AttributeError):
        record.last_name = "X"  # type: ignore[misc]


# --- Search keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Lefèvre-Dupont", "lefevre dupont"),
        ("Hélène", "helene"),
        ("Œ", "oe"),
        ("Vandœuvre-lès-Nancy", "vandoeuvre les nancy"),
        ("ß", "ss"),
        ("  N'DIAYE  ", "n diaye"),
        ("LAÏD", "laid"),
        ("Saint-Étienne (42)", "saint etienne 42"),
        ("de La Fontaine", "de la fontaine"),
        ("Ångström_Ærø", "angstrom aero"),
        ("---", ""),
        ("", ""),
        ("ﬁn", "fin"),
        ("Μαρία", ""),  # non-Latin letters do not survive: keys are ASCII
    ],
)
def test_normalize_search(text, key):
    assert normalize_search(text) == key
    assert normalize_search(text).isascii()
