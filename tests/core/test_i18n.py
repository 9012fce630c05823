"""The English catalogue: complete, compiled, and actually used by the pages.

Source strings are French; ``locale/en/LC_MESSAGES/django.po`` holds the English and the
committed ``django.mo`` is what Django reads. See locale/README.md to regenerate both."""

import ast
import gettext
import re
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, make_user

CATALOG_DIR = Path(__file__).resolve().parents[2] / "locale" / "en" / "LC_MESSAGES"
PO_FILE = CATALOG_DIR / "django.po"
MO_FILE = CATALOG_DIR / "django.mo"

_KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")\s*$')
_PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]|%[sdif]")


def _parse_po(path: Path) -> list[dict]:
    """Minimal .po reader: one dict per entry with msgid, msgid_plural, msgctxt, msgstr (a list,
    one string per plural form) and fuzzy. Obsolete (``#~``) entries are skipped."""
    entries: list[dict] = []
    entry: dict | None = None
    field: tuple[str, int] | None = None
    fuzzy = False

    def new_entry() -> dict:
        return {"msgctxt": None, "msgid": "", "msgid_plural": None, "msgstr": [], "fuzzy": False}

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#~"):
            continue
        if line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            continue
        match = _KEYWORD.match(line)
        if match:
            keyword, index, literal = match.groups()
            value = ast.literal_eval(literal)
            if keyword in ("msgctxt", "msgid") and (entry is None or entry["msgstr"]):
                entry = new_entry()
                entry["fuzzy"], fuzzy = fuzzy, False
                entries.append(entry)
            if keyword.startswith("msgstr"):
                position = int(index) if index is not None else 0
                while len(entry["msgstr"]) <= position:
                    entry["msgstr"].append("")
                entry["msgstr"][position] = value
                field = ("msgstr", position)
            else:
                entry[keyword] = value
                field = (keyword, -1)
        elif line.startswith('"'):
            name, position = field
            if name == "msgstr":
                entry["msgstr"][position] += ast.literal_eval(line)
            else:
                entry[name] += ast.literal_eval(line)
    return entries


@pytest.fixture(scope="module")
def po_entries() -> list[dict]:
    return [e for e in _parse_po(PO_FILE) if e["msgid"]]  # without the header


def test_po_file_is_complete(po_entries):
    assert len(po_entries) > 100  # the parser read something sensible
    fuzzy = [e["msgid"] for e in po_entries if e["fuzzy"]]
    untranslated = [e["msgid"] for e in po_entries if not all(e["msgstr"])]
    assert not fuzzy, f"fuzzy entries (ignored by Django): {fuzzy}"
    assert not untranslated, f"untranslated entries: {untranslated}"


def test_translations_keep_the_placeholders(po_entries):
    for entry in po_entries:
        for position, msgstr in enumerate(entry["msgstr"]):
            source = entry["msgid_plural"] if position and entry["msgid_plural"] else entry["msgid"]
            assert sorted(_PLACEHOLDER.findall(msgstr)) == sorted(_PLACEHOLDER.findall(source)), (
                entry["msgid"]
            )


def test_compiled_catalog_matches_the_po_file(po_entries):
    """The committed .mo must be recompiled after each .po edit (compilemessages)."""
    with MO_FILE.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    assert catalog.info().get("language") == "en"
    stale = []
    for entry in po_entries:
        if entry["fuzzy"] or not all(entry["msgstr"]):
            continue  # msgfmt leaves those out
        msgid, context = entry["msgid"], entry["msgctxt"]
        if entry["msgid_plural"] is None:
            got = [catalog.pgettext(context, msgid) if context else catalog.gettext(msgid)]
        else:
            plural = entry["msgid_plural"]
            got = [
                catalog.npgettext(context, msgid, plural, n)
                if context
                else catalog.ngettext(msgid, plural, n)
                for n in (1, 2)
            ]
        if got != entry["msgstr"]:
            stale.append(msgid)
    assert not stale, f".mo out of date for: {stale} — run compilemessages"


# French UI words that must not survive in the English pages. Only interface words: a user's own
# data (names, addresses) may be French. "Français" is left out: the language menu shows it.
FRENCH_UI_WORDS = [
    "Connexion",
    "Mot de passe",
    "mot de passe",
    "Continuer",
    "Étape",
    "Accédez",
    "oublié",
    "Messagerie",
    "Aller au contenu",
    "Langue",
    "Changer",
    "Données de santé",
    "Vérifier",
    "Vérification",
    "Saisissez",
    "Téléphone",
    "Annuler",
    "Accueil",
    "Sécurité",
    "Se déconnecter",
    "Bonjour",
    "boîte",
    "Identifiant",
    "Domaine",
    "secours",
    "ouverte",
    "Chirurgien",
]


def _assert_english(response):
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="en">' in html
    leftovers = [word for word in FRENCH_UI_WORDS if word in html]
    assert not leftovers, f"French left in the English page: {leftovers}"


def test_english_login_page_has_no_french_left(client, db):
    french = client.get("/compte/connexion/").content.decode()
    assert "Connexion" in french  # the word list does bite
    assert "Continuer" in french
    _assert_english(client.get("/compte/connexion/", HTTP_ACCEPT_LANGUAGE="en"))


def test_english_verify_page_has_no_french_left(client, db):
    user = make_user()
    response = client.post("/compte/connexion/", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302
    _assert_english(client.get("/compte/connexion/code/", HTTP_ACCEPT_LANGUAGE="en"))


def test_english_home_page_has_no_french_left(logged_in_client):
    _assert_english(logged_in_client.get("/", HTTP_ACCEPT_LANGUAGE="en"))
