"""The synthetic extract generator: exact format, plausible content, determinism (no database)."""

import re
import zipfile
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from apps.accounts.nomenclatures import idnat_error, luhn_valid
from apps.directory.extracts import (
    ActivityRecord,
    MailboxRecord,
    iter_activities,
    iter_mailboxes,
    open_extract,
)
from apps.directory.sample import write_sample
from tests.directory.test_extracts import (
    ACTIVITY_HEADER_56,
    COLUMNS_48,
    COLUMNS_52,
    FIXTURES,
    MAILBOX_HEADER,
)

PEOPLE = 3000


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """One mid-sized pair shared by the content tests, with its parsed records."""
    files = write_sample(people=PEOPLE, out_dir=tmp_path_factory.mktemp("sample"), seed=7)
    with open_extract(files.activities_path, "activities") as stream:
        activities = list(iter_activities(stream, name=files.activities_path.name))
    with open_extract(files.mssante_path, "mssante") as stream:
        mailboxes = list(iter_mailboxes(stream, name=files.mssante_path.name))
    assert all(isinstance(r, ActivityRecord) for r in activities)
    assert all(isinstance(r, MailboxRecord) for r in mailboxes)
    return files, activities, mailboxes


# --- Format ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "header"),
    [
        (56, ACTIVITY_HEADER_56),
        (52, "|".join(COLUMNS_52) + "|"),
        (48, "|".join(COLUMNS_48) + "|"),
    ],
)
def test_headers_are_the_published_ones(tmp_path, generation, header):
    files = write_sample(people=5, out_dir=tmp_path, generation=generation)
    assert files.activities_path.read_bytes().split(b"\n")[0].decode() == header
    assert files.mssante_path.read_bytes().split(b"\n")[0].decode() == MAILBOX_HEADER + "|"


@pytest.mark.parametrize("generation", [56, 52, 48])
def test_every_line_has_the_header_width_a_trailing_bar_and_lf(tmp_path, generation):
    files = write_sample(people=400, out_dir=tmp_path, generation=generation)
    for path, width in ((files.activities_path, generation), (files.mssante_path, 31)):
        data = path.read_bytes()
        assert b"\r" not in data
        assert data.endswith(b"|\n")
        lines = data.decode("utf-8").split("\n")[:-1]
        assert all(line.endswith("|") for line in lines)
        assert {line.count("|") for line in lines} == {width}
    assert files.activity_rows == data_rows(files.activities_path)
    assert files.mailbox_rows == data_rows(files.mssante_path)


def data_rows(path: Path) -> int:
    return path.read_bytes().count(b"\n") - 1


def test_file_names_and_zip_layout(tmp_path):
    files = write_sample(people=20, out_dir=tmp_path, stamp="202501020304", zip=True)
    assert files.activities_path == tmp_path / "PS_LibreAcces_202501020304.zip"
    assert files.mssante_path == tmp_path / "Extraction_Correspondance_MSSante_202501020304.zip"
    with zipfile.ZipFile(files.activities_path) as archive:
        assert archive.namelist() == ["PS_LibreAcces_Personne_activite_202501020304.txt"]
        assert archive.testzip() is None
    with zipfile.ZipFile(files.mssante_path) as archive:
        assert archive.namelist() == ["Extraction_Correspondance_MSSante_202501020304.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Extraction_Correspondance_MSSante_202501020304.zip",
        "PS_LibreAcces_202501020304.zip",
    ]  # no .part left behind

    plain = write_sample(people=20, out_dir=tmp_path / "txt", stamp="202501020304")
    assert plain.activities_path.name == "PS_LibreAcces_Personne_activite_202501020304.txt"
    assert plain.mssante_path.name == "Extraction_Correspondance_MSSante_202501020304.txt"


@pytest.mark.parametrize("use_zip", [False, True])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, use_zip):
    one = write_sample(people=300, out_dir=tmp_path / "1", seed=3, zip=use_zip)
    two = write_sample(people=300, out_dir=tmp_path / "2", seed=3, zip=use_zip)
    other = write_sample(people=300, out_dir=tmp_path / "3", seed=4, zip=use_zip)
    for attr in ("activities_path", "mssante_path"):
        first = getattr(one, attr).read_bytes()
        assert first == getattr(two, attr).read_bytes()
        assert first != getattr(other, attr).read_bytes()


def test_committed_fixtures_are_the_generator_output(tmp_path):
    files = write_sample(people=60, out_dir=tmp_path, seed=1, generation=56)
    for path in (files.activities_path, files.mssante_path):
        assert path.read_bytes() == (FIXTURES / path.name).read_bytes(), (
            "the generator changed: regenerate tests/directory/fixtures (see its README.md)"
        )


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="generation"):
        write_sample(people=1, out_dir=tmp_path, generation=50)
    with pytest.raises(ValueError, match="stamp"):
        write_sample(people=1, out_dir=tmp_path, stamp="2026-11-28")
    with pytest.raises(ValueError, match="mailbox_ratio"):
        write_sample(people=1, out_dir=tmp_path, mailbox_ratio=2)


def test_zero_people_gives_headers_only(tmp_path):
    files = write_sample(people=0, out_dir=tmp_path)
    assert (files.activity_rows, files.mailbox_rows) == (0, 0)
    assert files.activities_path.read_text(encoding="utf-8") == ACTIVITY_HEADER_56 + "\n"


# --- Content -----------------------------------------------------------------------------------


def test_national_ids_are_valid_rpps_or_adeli(sample):
    _files, activities, _mailboxes = sample
    kinds = Counter()
    for record in activities:
        assert record.idnat == record.id_type + record.id_pp
        assert idnat_error(record.idnat) is None, record.idnat
        if record.id_type == "8":
            assert len(record.id_pp) == 11
            assert luhn_valid(record.id_pp)
        else:
            assert record.id_type == "0"
            assert re.fullmatch(r"[0-9]{9}", record.id_pp)
        kinds[record.id_type] += 1
    assert kinds["8"] > 5 * kinds["0"] > 0  # mostly RPPS, some ADELI


def test_about_one_activity_row_and_a_third_per_person(sample):
    files, activities, _mailboxes = sample
    per_person = Counter(record.idnat for record in activities)
    assert len(per_person) == PEOPLE
    assert 1.22 < files.activity_rows / PEOPLE < 1.38
    assert max(per_person.values()) == 3
    several = sum(1 for count in per_person.values() if count > 1)
    assert 0.2 < several / PEOPLE < 0.3
    # The person columns repeat identically on each of someone's rows.
    by_person: dict[str, set] = {}
    for record in activities:
        by_person.setdefault(record.idnat, set()).add(
            (record.last_name, record.first_name, record.profession_code, record.skill_code)
        )
    assert all(len(variants) == 1 for variants in by_person.values())


def test_professions_have_real_codes_labels_and_proportions(sample):
    _files, activities, _mailboxes = sample
    people = {r.idnat: r for r in activities}.values()
    labels = {(r.profession_code, r.profession_label) for r in people}
    assert {("10", "Médecin"), ("60", "Infirmier"), ("40", "Chirurgien-Dentiste")} <= labels
    counts = Counter(r.profession_code for r in people)
    assert counts["60"] > counts["10"] > counts["21"] > counts["40"] > counts["26"]
    doctors = [r for r in people if r.profession_code == "10"]
    assert all(
        r.skill_type_code == "S" and re.fullmatch(r"SM[0-9]{2}", r.skill_code) for r in doctors
    )
    assert ("SM54", "Médecine générale") in {(r.skill_code, r.skill_label) for r in doctors}
    assert all(r.civility_code_ex in ("DR", "PR") for r in doctors)
    dentists = [r for r in people if r.profession_code == "40"]
    assert {r.skill_code for r in dentists} <= {"", "SCD01", "SCD02", "SCD03"}
    nurses = [r for r in people if r.profession_code == "60"]
    assert {r.civility_code_ex for r in nurses} == {""}
    assert {r.civility_code for r in people} == {"M", "MME"}


def test_activity_columns_look_real(sample):
    _files, activities, _mailboxes = sample
    with_site = [r for r in activities if r.structure_name]
    assert len(with_site) > 0.9 * len(activities)
    assert {r.mode_code for r in activities} <= {"", "L", "S", "B"}
    assert {r.sector_code for r in activities} <= {"", "SA01", "SA05", "SA07", "SA08"}
    assert {(r.mode_code, r.mode_label) for r in with_site} >= {("L", "Libéral"), ("S", "Salarié")}
    for record in with_site:
        dept = record.department_code
        assert record.postcode[:2] == ("20" if dept in ("2A", "2B") else dept[:2])
        assert record.postcode[: len(dept)] == dept or dept in ("2A", "2B")
        assert re.fullmatch(r"[0-9]{5}", record.postcode)
        assert record.town
        assert record.department_label
        if record.phone:
            assert re.fullmatch(r"0[1-9][0-9]{8}", record.phone)
        if record.siret:
            assert luhn_valid(record.siret)
            assert record.siret[:9] == record.siren
            assert luhn_valid(record.siren)
        if record.finess_site:
            assert len(record.finess_site) == 9
            assert record.finess_site.startswith(dept)
    departments = {r.department_code for r in with_site}
    assert {"75", "13", "69"} <= departments
    assert departments & {"971", "972", "973", "974", "976"}
    assert departments & {"2A", "2B"}
    names = [r.structure_name for r in with_site]
    assert any(n.startswith("CENTRE HOSPITALIER") for n in names)
    assert any(n.startswith("PHARMACIE") for n in names)
    assert any(n.startswith("CABINET DENTAIRE") for n in names)
    assert all(n == n.upper() and n.isascii() for n in names)


def test_names_look_french(sample):
    _files, activities, _mailboxes = sample
    last_names = {r.last_name for r in activities}
    first_names = {r.first_name for r in activities}
    assert all(name == name.upper() for name in last_names)
    assert any(not name.isascii() for name in last_names)  # LEFÈVRE…
    assert any(" " in name for name in last_names)  # LE GALL, DE LA FONTAINE…
    assert any("-" in name for name in first_names)  # Jean-Pierre…
    assert any(not name.isascii() for name in first_names)  # Hélène…


MSSANTE_DOMAIN = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.mssante\.fr")


def test_mailboxes_have_realistic_addresses_and_domains(sample):
    _files, activities, mailboxes = sample
    people = {r.idnat: r for r in activities}
    per = [m for m in mailboxes if m.bal_type == "PER"]
    org = [m for m in mailboxes if m.bal_type == "ORG"]
    assert {m.bal_type for m in mailboxes} == {"PER", "ORG"}
    assert 0.25 < len(per) / PEOPLE < 0.4
    assert 0.05 < len(org) / len(per) < 0.25
    domains = Counter()
    for mailbox in per:
        local, domain = mailbox.address.split("@")
        assert MSSANTE_DOMAIN.fullmatch(domain)
        person = people[mailbox.idnat]
        assert (mailbox.last_name, mailbox.first_name) == (person.last_name, person.first_name)
        assert re.fullmatch(r"[a-z-]+\.[a-z-]+[0-9]*", local), local
        domains[domain] += 1
    for mailbox in org:
        assert mailbox.idnat == mailbox.last_name == ""
        assert mailbox.structure_id
        assert mailbox.structure_name
        assert mailbox.service
        assert MSSANTE_DOMAIN.fullmatch(mailbox.address.split("@")[1])
    assert {"medecin.mssante.fr", "infirmier.mssante.fr", "pro.mssante.fr"} <= set(domains)
    assert any(re.fullmatch(r"chu?-[a-z0-9-]+\.mssante\.fr", d) for d in domains)
    assert any(d.startswith("secretariat.") for d in (m.address for m in org))
    assert any(re.fullmatch(r"[a-z]+\.[a-z-]+[0-9]+@.*", m.address) for m in per)  # homonyms
    assert all(m.structure_id_type in ("", "1", "3") for m in mailboxes)


def test_about_fifty_hospital_and_regional_domains(tmp_path):
    files = write_sample(people=20000, out_dir=tmp_path, mailbox_ratio=0.5)
    with open_extract(files.mssante_path, "mssante") as stream:
        domains = {r.address.split("@")[1] for r in iter_mailboxes(stream, name="x")}
    operators = domains - {
        "medecin.mssante.fr",
        "chirurgien-dentiste.mssante.fr",
        "pharmacien.mssante.fr",
        "infirmier.mssante.fr",
        "sage-femme.mssante.fr",
        "masseur-kinesitherapeute.mssante.fr",
        "pro.mssante.fr",
    }
    assert 35 <= len(operators) <= 70, sorted(operators)


# --- The command -------------------------------------------------------------------------------


@pytest.mark.skipif(
    "apps.directory" not in settings.INSTALLED_APPS, reason="apps.directory not installed yet"
)
def test_make_directory_sample_command(tmp_path):
    out = StringIO()
    call_command(
        "make_directory_sample",
        "--people=25",
        f"--out={tmp_path}",
        "--generation=52",
        "--zip",
        "--stamp=202611280000",
        stdout=out,
    )
    text = out.getvalue()
    assert str(tmp_path / "PS_LibreAcces_202611280000.zip") in text
    assert str(tmp_path / "Extraction_Correspondance_MSSante_202611280000.zip") in text
    assert re.search(r"\d+ activity rows", text)
    with open_extract(tmp_path / "PS_LibreAcces_202611280000.zip", "activities") as stream:
        assert iter_activities(stream, name="x").header.generation == 52
