"""Importing the MSSanté trust list: fetch, verify, parse, then replace the list in service in
one transaction. A refused or failed import leaves the list in service untouched and is recorded
(a ``failed`` history row, an audit event, a log line without the source's credentials)."""

import hashlib
import io
import logging
import re
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.events import Event
from apps.audit.services import record
from apps.trustlist.models import TrustedEntry, TrustList
from apps.trustlist.parse import ParsedList, TrustListError, parse_trustlist

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
CHECKSUM_MAX_BYTES = 4096
_SHA256 = re.compile(r"\b[0-9a-fA-F]{64}\b")
DEMO_TRUSTLIST = Path(__file__).resolve().parent / "data" / "demo-trustlist.xml"


@dataclass(frozen=True)
class ImportResult:
    trust_list: TrustList
    unchanged: bool = False  # same file as the list in service: nothing was replaced


# --- Fetching -----------------------------------------------------------------------------------


def redact_source(source: str) -> str:
    """The source without credentials or query string, fit for logs and the history."""
    parsed = urlparse(source)
    if parsed.scheme not in ("http", "https"):
        return source[:500]
    host = parsed.hostname or ""
    if parsed.port:
        host = f"{host}:{parsed.port}"
    return urlunparse((parsed.scheme, host, parsed.path, "", "", ""))[:500]


class _NoDowngradeRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects within http(s) only, and never from https down to http."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urlparse(req.full_url).scheme, urlparse(newurl).scheme
        if new not in ("http", "https") or (old == "https" and new != "https"):
            raise TrustListError(_("Redirection refusée vers %(scheme)s://.") % {"scheme": new})
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _ssl_context() -> ssl.SSLContext:
    """System roots, or only the bundle of TRUSTLIST_CA_BUNDLE (the IGC-Santé roots: the
    official site's certificate chains to a CA public trust stores do not hold)."""
    context = ssl.create_default_context(cafile=settings.TRUSTLIST_CA_BUNDLE or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _read(source: str, *, limit: int) -> bytes:
    """The bytes of a path, ``file://`` or http(s) URL, at most ``limit`` of them."""
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=_ssl_context()), _NoDowngradeRedirect()
        )
        request = urllib.request.Request(source, headers={"User-Agent": "mssweb-trustlist"})  # noqa: S310
        try:
            with opener.open(request, timeout=settings.TRUSTLIST_TIMEOUT) as response:
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > limit:
                    raise TrustListError(
                        _("Fichier trop volumineux (plus de %(limit)s octets).") % {"limit": limit}
                    )
                data = response.read(limit + 1)
        except urllib.error.HTTPError as exc:
            raise TrustListError(
                _("Téléchargement impossible : HTTP %(status)s.") % {"status": exc.code}
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrustListError(
                _("Téléchargement impossible : %(reason)s.") % {"reason": _describe(reason)}
            ) from exc
    elif parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else source)
        if not path.is_file():
            raise TrustListError(_("Fichier introuvable : %(path)s") % {"path": path})
        try:
            with path.open("rb") as stream:
                data = stream.read(limit + 1)
        except OSError as exc:
            raise TrustListError(
                _("Lecture impossible : %(reason)s.") % {"reason": _describe(exc)}
            ) from exc
    else:
        raise TrustListError(
            _("Source non prise en charge : %(scheme)s:// (chemin, file:// ou http(s)://).")
            % {"scheme": parsed.scheme}
        )
    if len(data) > limit:
        raise TrustListError(
            _("Fichier trop volumineux (plus de %(limit)s octets).") % {"limit": limit}
        )
    return data


def _describe(reason) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return _("certificat du serveur non reconnu (%(detail)s)") % {
            "detail": reason.verify_message
        }
    if isinstance(reason, TimeoutError):
        return _("délai dépassé")
    if isinstance(reason, str):
        return reason
    return type(reason).__name__ + (
        f" ({reason.strerror})" if getattr(reason, "strerror", None) else ""
    )


def expected_sha256(value: str) -> str:
    """A 64-hex SHA-256 as given, or read from a checksum file (path or URL, ``sha256sum``
    format: the first 64-hex word)."""
    value = value.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return value.lower()
    if urlparse(value).scheme in ("http", "https", "file") or Path(value).is_file():
        found = _SHA256.search(
            _read(value, limit=CHECKSUM_MAX_BYTES).decode("ascii", errors="replace")
        )
        if found:
            return found.group(0).lower()
        raise TrustListError(_("Aucune empreinte SHA-256 dans le fichier de contrôle."))
    raise TrustListError(_("Empreinte SHA-256 invalide : 64 caractères hexadécimaux attendus."))


# --- Import ---------------------------------------------------------------------------------------


def trustlist_import(*, source: str, sha256: str | None = None, actor=None) -> ImportResult:
    """Fetch the list at ``source`` (path or http(s) URL), check it against ``sha256`` when
    given (hex, or a checksum file's path or URL), and put it in service. Raises
    ``TrustListError`` (French ``message``) when refused; the list in service is then kept.
    The same file as the list in service replaces nothing (``unchanged``)."""
    shown = redact_source(source)
    digest = ""
    rejected = 0
    try:
        expected = expected_sha256(sha256) if sha256 else None
        data = _read(source, limit=settings.TRUSTLIST_MAX_BYTES)
        digest = hashlib.sha256(data).hexdigest()
        if expected and digest != expected:
            raise TrustListError(
                _("Empreinte SHA-256 différente : attendue %(expected)s, obtenue %(actual)s.")
                % {"expected": expected, "actual": digest}
            )
        active = TrustList.objects.filter(status=TrustList.Status.ACTIVE).first()
        if active is not None and active.sha256 == digest:
            active.checked_at = timezone.now()
            active.save(update_fields=["checked_at"])
            logger.info("trust list unchanged", extra={"trust_list": active.pk})
            return ImportResult(trust_list=active, unchanged=True)
        parsed = parse_trustlist(
            io.BytesIO(data),
            max_bytes=settings.TRUSTLIST_MAX_BYTES,
            max_rejected_ratio=settings.TRUSTLIST_MAX_REJECTED_RATIO,
        )
        rejected = parsed.rejected
        trust_list = _replace(parsed=parsed, source=shown, sha256=digest, actor=actor)
    except TrustListError as exc:
        rejected = exc.extra.get("rejected", rejected)
        _import_failed(source=shown, sha256=digest, message=exc.message, rejected=rejected,
                       actor=actor)  # fmt: skip
        raise
    except Exception as exc:
        message = _("Erreur interne pendant l'import (%(kind)s).") % {"kind": type(exc).__name__}
        _import_failed(source=shown, sha256=digest, message=message, rejected=rejected,
                       actor=actor)  # fmt: skip
        raise
    logger.info(
        "trust list imported",
        extra={
            "trust_list": trust_list.pk,
            "entries": trust_list.entry_count,
            "domains": trust_list.domain_count,
            "dns": trust_list.dn_count,
            "rejected": trust_list.rejected_count,
        },
    )
    return ImportResult(trust_list=trust_list)


@transaction.atomic
def _replace(*, parsed: ParsedList, source: str, sha256: str, actor) -> TrustList:
    # Concurrent imports queue here (a row lock on PostgreSQL; SQLite's write lock elsewhere).
    previous = list(TrustList.objects.select_for_update().filter(status=TrustList.Status.ACTIVE))
    TrustList.objects.filter(pk__in=[p.pk for p in previous]).update(
        status=TrustList.Status.SUPERSEDED
    )
    trust_list = TrustList.objects.create(
        status=TrustList.Status.ACTIVE,
        source=source,
        sha256=sha256,
        generated_at=parsed.generated_at,
        entry_count=len(parsed.entries),
        domain_count=parsed.domain_count,
        dn_count=parsed.dn_count,
        rejected_count=parsed.rejected,
        report={
            "reasons": dict(parsed.reasons),
            "samples": parsed.samples,
            "unterminated": parsed.unterminated,
        },
    )
    TrustedEntry.objects.exclude(trust_list=trust_list).delete()
    TrustedEntry.objects.bulk_create(
        (
            TrustedEntry(
                trust_list=trust_list,
                domain=entry.domain,
                description=entry.description,
                dn=entry.dn,
                dn_canonical=entry.dn_canonical,
                responsible_contact=entry.responsible_contact,
                support_contact=entry.support_contact,
                date_maj=entry.date_maj,
            )
            for entry in parsed.entries
        ),
        batch_size=BATCH_SIZE,
    )
    record(
        event=Event.TRUSTLIST_IMPORTED,
        actor=actor,
        target=trust_list,
        extra={
            "entries": trust_list.entry_count,
            "domains": trust_list.domain_count,
            "dns": trust_list.dn_count,
            "rejected": trust_list.rejected_count,
            "sha256": sha256,
            "previous": previous[0].pk if previous else None,
        },
    )
    return trust_list


def _import_failed(*, source: str, sha256: str, message: str, rejected: int, actor) -> None:
    """Record a refused import; never raises (the caller re-raises the original error)."""
    try:
        with transaction.atomic():
            failed = TrustList.objects.create(
                status=TrustList.Status.FAILED,
                source=source,
                sha256=sha256,
                rejected_count=rejected,
                error=message[:2000],
            )
            record(
                event=Event.TRUSTLIST_IMPORT_FAILED,
                actor=actor,
                target=failed,
                extra={"reason": message[:300], "rejected": rejected, "sha256": sha256},
            )
    except Exception:
        logger.exception("trust list failure could not be recorded")
        return
    logger.warning("trust list import refused", extra={"trust_list": failed.pk})


def trustlist_refresh() -> ImportResult | None:
    """The daily refresh from ``TRUSTLIST_SOURCE`` (checked against ``TRUSTLIST_SHA256`` when
    set). Nothing happens when no source is configured."""
    source = settings.TRUSTLIST_SOURCE
    if not source:
        return None
    return trustlist_import(source=source, sha256=settings.TRUSTLIST_SHA256 or None)


def trustlist_seed_demo() -> ImportResult | None:
    """Put the demo list (``data/demo-trustlist.xml``) in service, unless a list already is."""
    if TrustList.objects.filter(status=TrustList.Status.ACTIVE).exists():
        return None
    return trustlist_import(source=str(DEMO_TRUSTLIST))
