"""The daily beat task fetches both extracts from configured paths or URLs."""

import http.server
import threading
from functools import partial

import pytest

from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.directory import tasks
from apps.directory.importer import DirectoryImportError
from apps.directory.models import DirectoryState, ImportRun
from apps.directory.selectors import SearchFilters, directory_search
from tests.directory.conftest import LEFEVRE

pytestmark = pytest.mark.django_db


@pytest.fixture
def http_folder(small_pair):
    """A loopback HTTP server publishing the extracts' folder."""
    handler = partial(
        http.server.SimpleHTTPRequestHandler, directory=str(small_pair.activities.parent)
    )
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_without_sources_the_task_does_nothing(settings):
    settings.DIRECTORY_ACTIVITIES_SOURCE = ""
    assert tasks.import_daily() is None
    assert not ImportRun.objects.exists()


def test_task_imports_from_local_paths(settings, small_pair):
    settings.DIRECTORY_ACTIVITIES_SOURCE = str(small_pair.activities)
    settings.DIRECTORY_MSSANTE_SOURCE = str(small_pair.mssante)
    run_id = tasks.import_daily()
    assert ImportRun.objects.get(pk=run_id).status == ImportRun.Status.ACTIVE


def test_task_downloads_from_urls(settings, small_pair, http_folder):
    settings.DIRECTORY_ACTIVITIES_SOURCE = f"{http_folder}/{small_pair.activities.name}"
    settings.DIRECTORY_MSSANTE_SOURCE = f"{http_folder}/{small_pair.mssante.name}"
    tasks.import_daily()
    page = directory_search(filters=SearchFilters(query="lefevre"))
    assert [p.idnat for p in page.people] == [LEFEVRE]


def test_a_failed_download_keeps_the_directory(settings, small_pair, http_folder):
    settings.DIRECTORY_ACTIVITIES_SOURCE = str(small_pair.activities)
    settings.DIRECTORY_MSSANTE_SOURCE = str(small_pair.mssante)
    tasks.import_daily()
    slot = DirectoryState.objects.get().active_slot
    settings.DIRECTORY_ACTIVITIES_SOURCE = f"{http_folder}/missing.zip"
    with pytest.raises(DirectoryImportError, match="Téléchargement impossible"):
        tasks.import_daily()
    assert DirectoryState.objects.get().active_slot == slot
    failed = ImportRun.objects.get(status=ImportRun.Status.FAILED)
    assert "HTTPError" in failed.error
    assert AuditEvent.objects.filter(
        event=Event.DIRECTORY_IMPORT_FAILED, target_id=str(failed.pk)
    ).exists()
    assert directory_search(filters=SearchFilters(query="lefevre")).people
