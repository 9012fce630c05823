"""Staff see the list in service and the import history, read-only."""

import pytest
from django.test import Client

from apps.trustlist.models import TrustedEntry
from apps.trustlist.services import trustlist_import
from tests.conftest import login
from tests.trustlist.conftest import SAMPLE

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff_user):
    client = Client()
    login(client, staff_user)
    return client


@pytest.fixture
def imported():
    return trustlist_import(source=str(SAMPLE)).trust_list


def test_staff_search_the_list_by_domain_and_dn(staff_client, imported):
    page = staff_client.get("/admin/trustlist/trustedentry/", {"q": "15-20.mssante.fr"})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 5
    page = staff_client.get("/admin/trustlist/trustedentry/", {"q": "medimail-asip.mipih.fr"})
    assert (
        page.context["cl"].result_count
        == TrustedEntry.objects.filter(dn__contains="medimail-asip.mipih.fr").count()
    )
    page = staff_client.get("/admin/trustlist/trustedentry/", {"several": "yes"})
    domains = {e.domain for e in page.context["cl"].result_list}
    assert "15-20.mssante.fr" in domains
    assert "adsea29.mssante.fr" not in domains


def test_staff_see_the_import_history_read_only(staff_client, imported):
    page = staff_client.get("/admin/trustlist/trustlist/")
    assert page.status_code == 200
    assert b"619" in page.content
    assert staff_client.get("/admin/trustlist/trustlist/add/").status_code == 403
    detail = staff_client.get(f"/admin/trustlist/trustlist/{imported.pk}/change/")
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    entry = TrustedEntry.objects.first()
    assert staff_client.post(f"/admin/trustlist/trustedentry/{entry.pk}/delete/").status_code == 403


def test_the_list_is_not_shown_to_non_staff(logged_in_client, imported):
    response = logged_in_client.get("/admin/trustlist/trustedentry/")
    assert response.status_code == 302
