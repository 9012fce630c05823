"""Reading the ANS trust list XML (``ListeBlancheMSSante``), safely and in one pass.

The file is untrusted input until its checksum is verified, and even then it is XML: it is
parsed with defusedxml, DTDs refused outright (so no entity expansion and no external entity),
and the bytes read are capped. Entries are streamed and each ``<Domaine>`` element is freed once
read, so memory stays small whatever the file.

Official copies carry an XML signature after ``</ListeDomaines>``; copies in circulation (such
as the ANS's own public repository) may end right after ``</ListeDomaines>`` without closing the
root element. Such a file is accepted, since every entry is complete; any other truncation is
refused. The signature itself is not verified here: the SHA-256 checksum is the integrity check.
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError
from apps.trustlist.dn import DNError, dn_canonical

NAMESPACE = "https://listeblanche.mssante.fr/schema"
_NS = "{" + NAMESPACE + "}"
ROOT = _NS + "ListeBlancheMSSante"
LIST = _NS + "ListeDomaines"
ENTRY = _NS + "Domaine"
GENERATED = _NS + "DateDeGeneration"

# expat's XML_ERROR_NO_ELEMENTS ("no element found"): the input ended inside an open element.
_EXPAT_NO_ELEMENTS = 3
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")
MAX_DN_LENGTH = 1000
SAMPLES_KEPT = 20


class TrustListError(ApplicationError):
    """The list is refused; ``message`` (French) says why. The list in service is kept."""


@dataclass(frozen=True)
class ParsedEntry:
    domain: str  # lowercased
    description: str
    dn: str  # as written in the list
    dn_canonical: str
    responsible_contact: str
    support_contact: str
    date_maj: datetime | None


@dataclass
class ParsedList:
    generated_at: datetime | None = None
    entries: list[ParsedEntry] = field(default_factory=list)
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    samples: list[dict] = field(default_factory=list)
    # The file ended after </ListeDomaines> without closing its root element (tolerated).
    unterminated: bool = False

    @property
    def domain_count(self) -> int:
        return len({entry.domain for entry in self.entries})

    @property
    def dn_count(self) -> int:
        return len({entry.dn_canonical for entry in self.entries})

    def reject(self, *, index: int, reason: str) -> None:
        self.rejected += 1
        self.reasons[reason] += 1
        if len(self.samples) < SAMPLES_KEPT:
            self.samples.append({"entry": index, "reason": reason})


class _CappedReader:
    """A file-like object that refuses to read more than ``limit`` bytes."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream, self._limit, self.count = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        want = self._limit + 1 - self.count if size is None or size < 0 else size
        chunk = self._stream.read(min(want, self._limit + 1 - self.count))
        self.count += len(chunk)
        if self.count > self._limit:
            raise TrustListError(
                _("Fichier trop volumineux (plus de %(limit)s octets).") % {"limit": self._limit}
            )
        return chunk


def _datetime(text: str | None) -> datetime | None:
    """``2025-03-13T14:54:10Z`` → an aware datetime (UTC when no offset is given); None when
    absent or unreadable."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _text(element, tag: str, limit: int) -> str:
    return " ".join((element.findtext(_NS + tag) or "").split())[:limit]


def _entry(element, *, index: int, parsed: ParsedList) -> ParsedEntry | None:
    domain = (element.findtext(_NS + "Nom") or "").strip().lower().rstrip(".")
    dn = (element.findtext(_NS + "DNCertificatOperateur") or "").strip()
    if not domain:
        parsed.reject(index=index, reason=_("Nom manquant"))
        return None
    if not _DOMAIN.match(domain):
        parsed.reject(index=index, reason=_("nom de domaine invalide"))
        return None
    if not dn:
        parsed.reject(index=index, reason=_("DNCertificatOperateur manquant"))
        return None
    if len(dn) > MAX_DN_LENGTH:
        parsed.reject(index=index, reason=_("DN trop long"))
        return None
    try:
        canonical = dn_canonical(dn)
    except DNError:
        parsed.reject(index=index, reason=_("DN invalide"))
        return None
    return ParsedEntry(
        domain=domain,
        description=_text(element, "Description", 500),
        dn=dn,
        dn_canonical=canonical,
        responsible_contact=_text(element, "ResponsableContact", 500),
        support_contact=_text(element, "SupportContact", 500),
        date_maj=_datetime(element.findtext(_NS + "DateMAJ")),
    )


def parse_trustlist(
    stream: BinaryIO, *, max_bytes: int, max_rejected_ratio: float = 0.01
) -> ParsedList:
    """Parse the whole list from ``stream``. Raises ``TrustListError`` for a file that is not
    XML, has a DTD (entities), exceeds ``max_bytes``, has another root or namespace, has no
    usable entry, or has more than ``max_rejected_ratio`` of its entries unusable (entries
    lacking ``Nom`` or ``DNCertificatOperateur``, or with an invalid DN or domain name)."""
    parsed = ParsedList()
    depth = total = 0
    root = None
    list_closed = False
    try:
        for event, element in iterparse(
            _CappedReader(stream, max_bytes), events=("start", "end"), forbid_dtd=True
        ):
            if event == "start":
                depth += 1
                if depth == 1:
                    if element.tag != ROOT:
                        raise TrustListError(
                            _(
                                "Ce fichier n'est pas une liste blanche MSSanté : élément racine "
                                "%(tag)s, attendu ListeBlancheMSSante dans l'espace de noms "
                                "%(namespace)s."
                            )
                            % {"tag": element.tag, "namespace": NAMESPACE}
                        )
                    root = element
                continue
            depth -= 1
            if element.tag == GENERATED and depth == 1:
                parsed.generated_at = _datetime(element.text)
            elif element.tag == ENTRY and depth == 2:
                total += 1
                entry = _entry(element, index=total, parsed=parsed)
                if entry is not None:
                    parsed.entries.append(entry)
                element.clear()
            elif element.tag == LIST and depth == 1:
                list_closed = True
                root.remove(element)  # free the entries read so far
    except ParseError as exc:
        if not (list_closed and exc.code == _EXPAT_NO_ELEMENTS):
            if root is None:
                raise TrustListError(_("Fichier vide ou qui n'est pas du XML.")) from exc
            line, column = getattr(exc, "position", (0, 0))
            raise TrustListError(
                _("XML mal formé ou incomplet (ligne %(line)s, colonne %(column)s).")
                % {"line": line, "column": column}
            ) from exc
        parsed.unterminated = True
    except DefusedXmlException as exc:
        raise TrustListError(
            _("Le fichier contient une DTD ou des entités XML, refusées par sécurité.")
        ) from exc
    if not list_closed:
        raise TrustListError(_("Élément ListeDomaines absent."))
    if not parsed.entries:
        raise TrustListError(_("La liste ne contient aucune entrée utilisable."))
    if parsed.rejected > max_rejected_ratio * total:
        raise TrustListError(
            _("Trop d'entrées inutilisables : %(rejected)s sur %(total)s (%(reasons)s).")
            % {
                "rejected": parsed.rejected,
                "total": total,
                "reasons": ", ".join(f"{r} : {n}" for r, n in parsed.reasons.most_common()),
            },
            extra={"rejected": parsed.rejected},
        )
    return parsed
