import threading

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.directory.importer import DirectoryImportError, directory_import
from apps.directory.models import DirectoryState, ImportRun
from apps.directory.selectors import SearchFilters, directory_search, professional_get
from tests.directory.conftest import DUPONT, LEFEVRE, MOREL, activity, mailbox, write_pair

pytestmark = pytest.mark.django_db


def names(query="", **filters):
    page = directory_search(filters=SearchFilters(query=query, **filters))
    return [p.idnat for p in page.people]


def test_import_puts_a_searchable_snapshot_in_service(small_pair):
    run = directory_import(activities=small_pair.activities, mssante=small_pair.mssante)
    assert run.status == ImportRun.Status.ACTIVE
    assert (run.activity_rows, run.mailbox_rows, run.rejected_rows) == (4, 3, 0)
    assert DirectoryState.objects.get().active_slot == run.slot
    assert names("lefevre") == [LEFEVRE]
    person = professional_get(idnat=LEFEVRE)
    assert [p.town for p in person.places] == ["Lyon", "Bourg-en-Bresse"]
    assert [m["address"] for m in person.mailboxes] == [
        "helene.lefevre@chirurgien-dentiste.mssante.fr"
    ]
    event = AuditEvent.objects.get(event=Event.DIRECTORY_IMPORTED)
    assert event.detail["activity_rows"] == 4


def test_command_prints_a_summary(small_pair, capsys):
    call_command(
        "import_directory", "--activities", str(small_pair.activities),
        "--mssante", str(small_pair.mssante),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "activities kept:" in out
    assert "4" in out


def test_second_import_replaces_the_first_and_drops_vanished_people(small_pair, tmp_path):
    directory_import(activities=small_pair.activities, mssante=small_pair.mssante)
    first_slot = DirectoryState.objects.get().active_slot
    v2 = write_pair(
        tmp_path / "v2",
        [activity(LEFEVRE, "LEFÈVRE", "Hélène"), activity(MOREL, "MOREL", "Claire"),
         activity("810003456781", "NOUVEAU", "Jean")],
        [mailbox("claire.morel@chirurgien-dentiste.mssante.fr", MOREL, "MOREL", "Claire")],
    )  # fmt: skip
    run = directory_import(activities=v2.activities, mssante=v2.mssante)
    assert run.slot != first_slot
    assert names("dupont") == []
    assert names("nouveau") == ["810003456781"]
    assert professional_get(idnat=LEFEVRE).mailboxes == []
    assert ImportRun.objects.filter(status=ImportRun.Status.SUPERSEDED).count() == 1
    # And a third import reuses the first slot, emptied first.
    run3 = directory_import(activities=small_pair.activities, mssante=small_pair.mssante)
    assert run3.slot == first_slot
    assert names("nouveau") == []
    assert names("dupont") == [DUPONT]


def test_header_without_required_columns_is_refused_before_touching_data(small_pair, tmp_path):
    directory_import(activities=small_pair.activities, mssante=small_pair.mssante)
    broken = tmp_path / "PS_LibreAcces_Personne_activite_bad.txt"
    broken.write_text("Nom|Prénom|\nDUPONT|Jean|\n", encoding="utf-8")
    with pytest.raises(DirectoryImportError, match="Identification nationale PP"):
        directory_import(activities=broken, mssante=small_pair.mssante)
    assert names("lefevre") == [LEFEVRE]
    failed = ImportRun.objects.get(status=ImportRun.Status.FAILED)
    assert "Identification nationale PP" in failed.error
    assert AuditEvent.objects.filter(event=Event.DIRECTORY_IMPORT_FAILED).exists()


def test_empty_file_is_refused(small_pair, tmp_path):
    empty = tmp_path / "PS_LibreAcces_Personne_activite_empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DirectoryImportError):
        directory_import(activities=empty, mssante=small_pair.mssante)
    assert not DirectoryState.objects.exists()


def test_isolated_bad_lines_are_skipped_and_counted(tmp_path, settings):
    settings.DIRECTORY_MAX_REJECTED_RATIO = 0.5
    pair = write_pair(
        tmp_path, [activity(LEFEVRE, "LEFÈVRE", "Hélène"), activity(DUPONT, "DUPONT", "Marie")],
        [mailbox("helene.lefevre@chirurgien-dentiste.mssante.fr", LEFEVRE, "LEFÈVRE", "Hélène")],
    )  # fmt: skip
    with pair.activities.open("ab") as out:
        out.write(b"8|1|8000\xff|broken|\n")
        out.write(b"8|10001045367|810001045367|too|few|\n")
    run = directory_import(activities=pair.activities, mssante=pair.mssante)
    assert run.activity_rows == 2
    assert run.rejected_rows == 2
    lines = sorted(sample["line"] for sample in run.report["samples"])
    assert lines == [4, 5]
    assert any("UTF-8" in reason for reason in run.report["reasons"])


def test_too_many_bad_lines_refuse_the_import(tmp_path, small_pair):
    directory_import(activities=small_pair.activities, mssante=small_pair.mssante)
    pair = write_pair(tmp_path / "bad", [activity(LEFEVRE, "LEFÈVRE", "Hélène")], [])
    with pair.activities.open("ab") as out:
        for _ in range(5):
            out.write(b"junk|\n")
    with pytest.raises(DirectoryImportError, match="trop d'erreurs"):
        directory_import(activities=pair.activities, mssante=pair.mssante)
    assert names("dupont") == [DUPONT]


def test_a_much_smaller_extract_needs_force(tmp_path, small_pair):
    directory_import(activities=small_pair.activities, mssante=small_pair.mssante)
    tiny = write_pair(tmp_path / "tiny", [activity(MOREL, "MOREL", "Claire")], [])
    with pytest.raises(DirectoryImportError, match="--force"):
        directory_import(activities=tiny.activities, mssante=tiny.mssante)
    assert names("dupont") == [DUPONT]
    directory_import(activities=tiny.activities, mssante=tiny.mssante, force=True)
    assert names("dupont") == []


def test_command_exits_1_and_keeps_data_on_refusal(tmp_path, small_pair):
    directory_import(activities=small_pair.activities, mssante=small_pair.mssante)
    missing = tmp_path / "nope.txt"
    with pytest.raises(CommandError) as info:
        call_command("import_directory", "--activities", str(missing),
                     "--mssante", str(small_pair.mssante))  # fmt: skip
    assert info.value.returncode == 1
    assert names("lefevre") == [LEFEVRE]


def test_zip_extracts_are_read(tmp_path, small_pair):
    import zipfile

    act_zip = tmp_path / "PS_LibreAcces_202611280000.zip"
    with zipfile.ZipFile(act_zip, "w") as archive:
        archive.write(small_pair.activities, small_pair.activities.name)
        archive.writestr("PS_LibreAcces_SavoirFaire_202611280000.txt", "x|\n")
    bal_zip = tmp_path / "Extraction_Correspondance_MSSante_202611280000.zip"
    with zipfile.ZipFile(bal_zip, "w") as archive:
        archive.write(small_pair.mssante, small_pair.mssante.name)
    run = directory_import(activities=act_zip, mssante=bal_zip)
    assert run.activity_rows == 4


@pytest.mark.skipif(
    "sqlite" in settings.DATABASES["default"]["ENGINE"],
    reason="the in-memory test SQLite locks its schema table across connections; "
    "a real SQLite file in WAL mode and PostgreSQL do not",
)
@pytest.mark.django_db(transaction=True)
def test_a_search_during_an_import_sees_the_old_snapshot_whole(
    small_pair, tmp_path, allow_audit_flush
):
    """While the spare slot fills, searches read the slot in service; then the new one."""
    directory_import(activities=small_pair.activities, mssante=small_pair.mssante)
    big = write_pair(
        tmp_path / "big",
        [activity(f"8{n:010d}{0}", f"NOM{n:05d}", "Jean") for n in range(3000)]
        + [activity(LEFEVRE, "LEFÈVRE", "Hélène")],
        [],
    )
    seen: list[list[str]] = []
    done = threading.Event()

    def search_while_importing():
        from django.db import connection

        try:
            while not done.is_set():
                seen.append(names("lefevre") + names("dupont"))
        finally:
            connection.close()

    searcher = threading.Thread(target=search_while_importing)
    searcher.start()
    try:
        directory_import(activities=big.activities, mssante=big.mssante, force=True)
    finally:
        done.set()
        searcher.join()
    seen.append(names("lefevre") + names("dupont"))
    assert seen
    # Each search saw either the old snapshot (both) or the new one (Lefèvre only): never none.
    assert all(result in ([LEFEVRE, DUPONT], [LEFEVRE]) for result in seen)
    assert seen[-1] == [LEFEVRE]
