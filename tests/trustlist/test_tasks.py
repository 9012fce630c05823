"""The daily beat refresh, and the demo seed."""

import shutil

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from apps.trustlist import tasks
from apps.trustlist.models import TrustList
from apps.trustlist.parse import TrustListError
from apps.trustlist.routing import Route, route_for
from tests.trustlist.conftest import SAMPLE, SAMPLE_SHA256

pytestmark = pytest.mark.django_db


def test_beat_refreshes_the_list_daily():
    entry = django_settings.CELERY_BEAT_SCHEDULE["trustlist-refresh-daily"]
    assert entry["task"] == "trustlist.refresh"
    assert tasks.refresh.name == "trustlist.refresh"
    assert len(entry["schedule"].hour) == 1
    assert len(entry["schedule"].minute) == 1


def test_without_a_source_the_task_does_nothing(settings):
    settings.TRUSTLIST_SOURCE = ""
    assert tasks.refresh.delay().get() is None
    assert not TrustList.objects.exists()


def test_the_task_imports_the_configured_url(settings, http_folder):
    folder, base = http_folder
    shutil.copy(SAMPLE, folder / "listeblanchemssante.xml")
    settings.TRUSTLIST_SOURCE = f"{base}/listeblanchemssante.xml"
    settings.TRUSTLIST_SHA256 = SAMPLE_SHA256
    trust_list_id = tasks.refresh.delay().get()
    trust_list = TrustList.objects.get(pk=trust_list_id)
    assert trust_list.status == TrustList.Status.ACTIVE
    assert trust_list.entry_count == 619
    assert route_for("x@adsea29.mssante.fr") == Route.OPERATOR
    # The next day, the same file: nothing replaced.
    assert tasks.refresh.delay().get() == trust_list_id
    assert TrustList.objects.count() == 1


def test_a_refused_refresh_keeps_the_list(settings, http_folder):
    folder, base = http_folder
    shutil.copy(SAMPLE, folder / "listeblanchemssante.xml")
    settings.TRUSTLIST_SOURCE = f"{base}/listeblanchemssante.xml"
    first = tasks.refresh.delay().get()
    (folder / "listeblanchemssante.xml").write_bytes(b"<html>maintenance</html>")
    with pytest.raises(TrustListError):
        tasks.refresh.delay().get()
    assert TrustList.objects.get(status=TrustList.Status.ACTIVE).pk == first


def test_demo_seed_puts_the_demo_list_in_service_once(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.MSSWEB_DEMO_DIRECTORY_PEOPLE = 20
    call_command("seed_demo")
    assert route_for("x@peer.mssweb.test") == Route.OPERATOR
    assert route_for(f"x@{settings.MSSWEB_DEMO_DOMAIN}") == Route.LOCAL
    call_command("seed_demo")
    assert TrustList.objects.count() == 1
