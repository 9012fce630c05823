import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.directory.importer import directory_import
from apps.directory.models import Contact, SearchCount
from apps.directory.selectors import SearchFilters, directory_search
from tests.conftest import login, make_user
from tests.directory.conftest import DUPONT, LEFEVRE, MOREL, activity, write_pair

pytestmark = pytest.mark.django_db


@pytest.fixture
def directory(small_pair):
    return directory_import(activities=small_pair.activities, mssante=small_pair.mssante)


def ids(query="", cursor=None, limit=20, **filters):
    page = directory_search(
        filters=SearchFilters(query=query, **filters), cursor=cursor, limit=limit
    )
    return [p.idnat for p in page.people], page


@pytest.mark.parametrize(
    "query",
    ["lefevre", "LEFÈVRE", "Lefèvre", "helene lefevre", "Hélène Lefèvre", "lef", "lefevre h",
     "h lefevre", "  LEFEVRE   helene "],
)  # fmt: skip
def test_names_match_without_case_accents_or_order(directory, query):
    assert ids(query)[0] == [LEFEVRE]


def test_no_match_and_no_filter(directory):
    assert ids("zzz")[0] == []
    page = directory_search(filters=SearchFilters())
    assert page.people == []


def test_filters(directory):
    assert ids(profession="10")[0] == [DUPONT]
    assert ids(department="01")[0] == [LEFEVRE]
    assert ids(postcode="75011")[0] == [DUPONT]
    assert ids(town="bourg en")[0] == [LEFEVRE]
    assert ids(specialty="scd01")[0] == [LEFEVRE]
    assert ids(has_mssante=True, department="69")[0] == [LEFEVRE, MOREL]
    assert ids("dupont", department="69")[0] == []


def test_people_with_several_activities_are_one_result(directory):
    found, page = ids(department="", profession="40")
    assert found == [LEFEVRE, MOREL]
    assert len(page.people[0].places) == 2


def test_keyset_pages_are_stable_and_complete(tmp_path):
    rows = []
    for n in range(45):
        idnat = f"8{n:010d}0"
        rows.append(activity(idnat, f"MARTIN{n:02d}", "Paul"))
        if n % 3 == 0:  # some people have two activities
            rows.append(activity(idnat, f"MARTIN{n:02d}", "Paul", **{
                "Libellé commune (coord. structure)": "Villeurbanne"}))  # fmt: skip
    pair = write_pair(tmp_path, rows, [])
    directory_import(activities=pair.activities, mssante=pair.mssante)
    seen, cursor, pages = [], None, 0
    while True:
        found, page = ids("martin", cursor=cursor, limit=10)
        seen += found
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages == 5
    assert seen == sorted(seen, key=lambda i: int(i[1:11]))
    assert len(seen) == len(set(seen)) == 45


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="typo tolerance uses pg_trgm (PostgreSQL)"
)
def test_typos_find_the_closest_name_on_postgresql(directory):
    found, page = ids("lefebvre")
    assert found == [LEFEVRE]
    assert page.corrected_to == "lefevre"


def test_search_page_renders_cards_and_counts(client, directory):
    user = make_user()
    login(client, user)
    response = client.get(reverse("directory:search"), {"q": "lefevre"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Hélène" in html
    assert "helene.lefevre@chirurgien-dentiste.mssante.fr" in html
    assert "Bourg-en-Bresse" in html
    assert SearchCount.objects.get(user=user).searches == 1


def test_search_page_before_any_import_says_so(logged_in_client):
    response = logged_in_client.get(reverse("directory:search"), {"q": "x"})
    assert "pas encore chargé" in response.content.decode()


def test_professional_page(logged_in_client, directory):
    response = logged_in_client.get(reverse("directory:professional", args=[LEFEVRE]))
    assert response.status_code == 200
    assert "Centre dentaire de Bourg" in response.content.decode()
    assert logged_in_client.get(reverse("directory:professional", args=["8000"])).status_code == 404


def test_directory_needs_login(client, directory):
    assert client.get(reverse("directory:search"))["Location"].startswith("/compte/connexion/")
    response = client.get(reverse("directory:autocomplete"), {"q": "lef"})
    assert response.status_code == 302


class TestAutocomplete:
    def test_returns_directory_mailboxes(self, logged_in_client, directory):
        response = logged_in_client.get(reverse("directory:autocomplete"), {"q": "lef"})
        assert response.status_code == 200
        results = response.json()["results"]
        assert results[0]["address"] == "helene.lefevre@chirurgien-dentiste.mssante.fr"
        assert results[0]["name"] == "Dr Hélène LEFÈVRE"
        assert results[0]["source"] == "directory"
        assert response["Cache-Control"] == "private, no-store"

    def test_finds_organisations_and_addresses(self, logged_in_client, directory):
        by_name = logged_in_client.get(reverse("directory:autocomplete"), {"q": "ch lyon"})
        assert by_name.json()["results"][0]["address"] == (
            "secretariat.radiologie@ch-lyon.mssante.fr"
        )
        by_address = logged_in_client.get(reverse("directory:autocomplete"), {"q": "claire.mo"})
        assert by_address.json()["results"] == []  # no "@": a name search
        by_address = logged_in_client.get(
            reverse("directory:autocomplete"), {"q": "claire.morel@chir"}
        )
        assert by_address.json()["results"][0]["address"].startswith("claire.morel@")

    def test_contacts_come_first(self, logged_in_client, directory):
        Contact.objects.create(
            owner=logged_in_client.user, email="lea.lefort@ailleurs.mssante.fr",
            display_name="Léa Lefort", key="lefort lea", is_favourite=True,
        )  # fmt: skip
        results = logged_in_client.get(reverse("directory:autocomplete"), {"q": "lef"}).json()[
            "results"
        ]
        assert [r["source"] for r in results] == ["contact", "directory"]

    def test_other_users_contacts_are_not_offered(self, logged_in_client, directory):
        other = make_user()
        Contact.objects.create(owner=other, email="secret@x.mssante.fr",
                               display_name="Lefort Secret", key="lefort secret")  # fmt: skip
        results = logged_in_client.get(reverse("directory:autocomplete"), {"q": "lef"}).json()
        assert "secret@x.mssante.fr" not in str(results)

    def test_rate_limited(self, logged_in_client, directory, settings):
        settings.DIRECTORY_AUTOCOMPLETE_RATE = 3
        codes = [
            logged_in_client.get(reverse("directory:autocomplete"), {"q": "lef"}).status_code
            for _ in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]


class TestContacts:
    def test_add_from_directory_then_edit_and_delete(self, logged_in_client, directory):
        response = logged_in_client.post(
            reverse("directory:contact_add"),
            {"address": "helene.lefevre@chirurgien-dentiste.mssante.fr", "next": "/annuaire/?q=x"},
        )
        assert response["Location"] == "/annuaire/?q=x"
        contact = Contact.objects.get(owner=logged_in_client.user)
        assert contact.display_name == "Dr Hélène LEFÈVRE"
        assert contact.idnat == LEFEVRE
        response = logged_in_client.post(
            reverse("directory:contact_edit", args=[contact.pk]),
            {"display_name": "Hélène (ODF)", "email": contact.email, "is_favourite": "on",
             "note": "Orthodontiste de mes patients"},
        )  # fmt: skip
        assert response.status_code == 302
        contact.refresh_from_db()
        assert contact.is_favourite
        assert contact.note == "Orthodontiste de mes patients"
        page = logged_in_client.get(reverse("directory:contacts"))
        assert "Orthodontiste de mes patients" in page.content.decode()
        logged_in_client.post(reverse("directory:contact_delete", args=[contact.pk]))
        assert not Contact.objects.exists()

    def test_free_contact_and_duplicate_address(self, logged_in_client):
        data = {"display_name": "Dr Paul Martin", "email": "p.martin@exemple.fr"}
        assert logged_in_client.post(reverse("directory:contact_new"), data).status_code == 302
        contact = Contact.objects.get()
        assert contact.key == "martin paul"
        other = Contact.objects.create(owner=logged_in_client.user, email="o@x.fr",
                                       display_name="O", key="o")  # fmt: skip
        response = logged_in_client.post(reverse("directory:contact_edit", args=[other.pk]), data)
        assert response.status_code == 200
        assert "déjà dans vos contacts" in response.content.decode()

    def test_someone_elses_contact_is_404(self, logged_in_client):
        other = make_user()
        theirs = Contact.objects.create(owner=other, email="x@y.fr", display_name="X", key="x")
        assert (
            logged_in_client.get(reverse("directory:contact_edit", args=[theirs.pk])).status_code
            == 404
        )
        assert (
            logged_in_client.post(reverse("directory:contact_delete", args=[theirs.pk])).status_code
            == 404
        )
        assert Contact.objects.filter(pk=theirs.pk).exists()

    def test_unknown_directory_address_is_refused(self, logged_in_client, directory):
        response = logged_in_client.post(reverse("directory:contact_add"), {"address": "n@o.fr"})
        assert response.status_code == 302
        assert not Contact.objects.exists()


def test_client_helper_is_real(db):
    assert Client().get("/healthz").status_code == 200


def test_compound_last_names_are_found_by_any_of_their_words(tmp_path):
    pair = write_pair(tmp_path, [
        activity("810001045367", "LEFÈVRE-DUPONT", "Hélène"),
        *[activity(f"8{n:010d}0", "LEFEVRE", f"Anne{n:02d}") for n in range(30)],
    ], [])  # fmt: skip
    directory_import(activities=pair.activities, mssante=pair.mssante)
    assert ids("lefevre helene")[0] == ["810001045367"]
    assert ids("helene lefevre")[0] == ["810001045367"]
    assert ids("lefevre dupont")[0] == ["810001045367"]
    # Words adjacent fill the page first; the cursor keeps the same rule on the next page.
    first, page = ids("lefevre anne", limit=20)
    assert len(first) == 20
    second, _ = ids("lefevre anne", cursor=page.next_cursor, limit=20)
    assert len(second) == 10
    assert not set(first) & set(second)


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="typo tolerance uses PostgreSQL extensions"
)
@pytest.mark.parametrize(("typo", "name"), [("peitt", "petit"), ("garnire", "garnier")])
def test_transposed_letters_are_corrected_on_postgresql(tmp_path, typo, name):
    pair = write_pair(tmp_path, [
        activity("810001045367", name.upper(), "Jean"),
        activity("801234560801", "PERRIN", "Paul"),
    ], [])  # fmt: skip
    directory_import(activities=pair.activities, mssante=pair.mssante)
    found, page = ids(typo)
    assert found == ["810001045367"]
    assert page.corrected_to == name
