"""Changes in the directory area: the daily import from configured sources, personal contacts,
search counting."""

import shutil
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError
from apps.directory.extracts import normalize_search
from apps.directory.importer import DirectoryImportError, directory_import, import_failed
from apps.directory.models import Contact, ImportRun, SearchCount

DOWNLOAD_TIMEOUT = 300


def _fetch(source: str, folder: Path) -> Path:
    """A local path for ``source``: itself, or a streamed download of an http(s) URL."""
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        name = Path(parsed.path).name or "extract.zip"
        target = folder / name
        with (
            urllib.request.urlopen(source, timeout=DOWNLOAD_TIMEOUT) as response,  # noqa: S310
            target.open("wb") as out,
        ):
            shutil.copyfileobj(response, out, length=1 << 20)
        return target
    if parsed.scheme not in ("", "file"):
        raise DirectoryImportError(f"Source non prise en charge : {parsed.scheme}://")
    path = Path(parsed.path if parsed.scheme == "file" else source)
    if not path.is_file():
        raise DirectoryImportError(f"Fichier introuvable : {path}")
    return path


def directory_import_from_sources(*, force: bool = False) -> ImportRun | None:
    """The daily import: fetch both configured extracts and import them. Without configured
    sources, nothing happens. A failure keeps the directory in service (and is audited)."""
    activities, mssante = settings.DIRECTORY_ACTIVITIES_SOURCE, settings.DIRECTORY_MSSANTE_SOURCE
    if not (activities and mssante):
        return None
    downloads = Path(settings.VAR_DIR) / "directory-downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as folder:
        try:
            activities_path = _fetch(activities, Path(folder))
            mssante_path = _fetch(mssante, Path(folder))
        except (OSError, DirectoryImportError) as exc:
            message = getattr(exc, "message", "") or (
                f"Téléchargement impossible : {type(exc).__name__}"
            )
            run = ImportRun.objects.create(activities_source=activities, mssante_source=mssante)
            import_failed(run=run, message=message)
            raise DirectoryImportError(message) from exc
        return directory_import(activities=activities_path, mssante=mssante_path, force=force)


# --- Contacts -----------------------------------------------------------------------------------


class ContactError(ApplicationError):
    pass


@transaction.atomic
def contact_save(
    *,
    owner,
    email: str,
    display_name: str,
    idnat: str = "",
    profession_label: str = "",
    town: str = "",
    is_favourite: bool = False,
    note: str = "",
    contact: Contact | None = None,
) -> Contact:
    """Create or update one of ``owner``'s contacts (one per address)."""
    email = email.strip().lower()
    contact = (
        contact or Contact.objects.filter(owner=owner, email=email).first() or Contact(owner=owner)
    )
    contact.email = email
    contact.display_name = display_name.strip() or email
    contact.idnat = idnat
    contact.profession_label = profession_label
    contact.town = town
    contact.is_favourite = is_favourite
    contact.note = note
    contact.key = normalize_search(_sort_name(contact.display_name))[:200] or email
    contact.updated_at = timezone.now()
    try:
        with transaction.atomic():
            contact.save()
    except IntegrityError as exc:
        raise ContactError(_("Cette adresse est déjà dans vos contacts.")) from exc
    return contact


def _sort_name(display_name: str) -> str:
    """ "Dr Marie Dupont" sorts as "dupont marie"."""
    words = [
        w for w in display_name.split() if w.lower().rstrip(".") not in ("dr", "pr", "m", "mme")
    ]
    if len(words) >= 2:
        return " ".join([words[-1], *words[:-1]])
    return " ".join(words)


def contact_delete(*, contact: Contact) -> None:
    contact.delete()


def search_count(*, user, autocomplete: bool = False) -> None:
    """Count a directory search of ``user`` today (one upsert)."""
    day = timezone.localdate()
    column = "autocompletes" if autocomplete else "searches"
    updated = SearchCount.objects.filter(user=user, day=day).update(**{column: F(column) + 1})
    if not updated:
        try:
            with transaction.atomic():
                SearchCount.objects.create(user=user, day=day, **{column: 1})
        except IntegrityError:
            SearchCount.objects.filter(user=user, day=day).update(**{column: F(column) + 1})
