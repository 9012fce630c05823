"""Exports of the audit trail: a message's trace as JSON (with the rows' hashes, so that a third
party can recompute them) and as PDF, the staff's CSV and JSON exports (streamed), and the check
of a JSON export against the chain in the database (``export_verify``).

Pure builders: the views audit the export (``apps.audit.reporting``) before calling them.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.chain import GENESIS_HASH, HASHED_FIELDS, canonical_ip, compute_row_hash, timestamp
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.audit.selectors import Trace, event_label
from apps.audit.services import chain_head

EXPORT_FORMAT = "mssweb-audit-export/1"

CHAIN_DESCRIPTION = {
    "digest": "sha256",
    "genesis_prev_hash": GENESIS_HASH,
    "hashed_fields": list(HASHED_FIELDS),
    "row_hash": "hex(sha256(utf8(prev_hash + canonical_json(row))))",
    "canonical_json": (
        "JSON object of the hashed_fields of the row, keys sorted, separators ',' and ':' "
        "(no spaces), non-ASCII characters written as is (not escaped), no NaN"
    ),
    "created_at": "UTC, ISO 8601 with microseconds and +00:00 (as given in each row)",
    "ip": "canonical form (IPv4-mapped IPv6 written as IPv4), or null",
    "event": "the event number (integer); event_name and event_label are not hashed",
    "links": (
        "each row's prev_hash is the row_hash of the row with seq - 1; rows of one export are "
        "not consecutive in the chain: check them against the operator's chain or its anchors"
    ),
}


def export_row(row: AuditEvent) -> dict[str, Any]:
    """One audit row as exported: every hashed field exactly as the chain hashes it."""
    return {
        "seq": row.seq,
        "created_at": timestamp(row.created_at),
        "event": int(row.event),
        "event_name": _event_name(row.event),
        "event_label": event_label(row.event),
        "actor_ref": row.actor_ref,
        "actor_label": row.actor_label,
        "ip": canonical_ip(row.ip),
        "user_agent": row.user_agent,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "detail": row.detail,
        "prev_hash": row.prev_hash,
        "row_hash": row.row_hash,
    }


def _event_name(number: int) -> str:
    try:
        return Event(number).name
    except ValueError:
        return ""


def _head() -> dict[str, Any] | None:
    last = chain_head()
    return {"seq": last[0], "row_hash": last[1]} if last else None


def trace_json(*, trace: Trace, exported_by: str) -> dict[str, Any]:
    message = trace.message
    return {
        "format": EXPORT_FORMAT,
        "kind": "message_trace",
        "generated_at": timestamp(timezone.now()),
        "generated_by": exported_by,
        "operator": settings.SITE_NAME,
        "message": {
            "message_id": message.message_id,
            "copies": [{"id": copy.pk, "mailbox": copy.mailbox.address} for copy in trace.copies],
        },
        "chain": CHAIN_DESCRIPTION,
        "head": _head(),
        "rows": [export_row(row) for row in trace.events],
    }


def trace_json_bytes(*, trace: Trace, exported_by: str) -> bytes:
    data = trace_json(trace=trace, exported_by=exported_by)
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")


# --- Verification -------------------------------------------------------------------------------


@dataclass
class ExportCheck:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.checked > 0


def _hash_of(row: Mapping[str, Any]) -> str:
    values = {name: row[name] for name in HASHED_FIELDS}
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    return compute_row_hash(prev_hash=row["prev_hash"], **values)


def export_verify(data: Mapping[str, Any] | str | bytes) -> ExportCheck:
    """Check a JSON export: every row's hash recomputes from its own fields (what a third party
    can do alone), and every row is the row of the same rank in this operator's chain, itself
    intact (same hash, recomputing from the stored fields). Problems are listed in French."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError:
            return ExportCheck(problems=[_("Le fichier n'est pas un JSON lisible.")])
    if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
        return ExportCheck(problems=[_("Ce fichier n'est pas un export du journal mssweb.")])
    rows = data.get("rows")
    if not isinstance(rows, list) or not rows:
        return ExportCheck(problems=[_("L'export ne contient aucune ligne.")])
    check = ExportCheck()
    seqs = [row.get("seq") for row in rows if isinstance(row, Mapping)]
    stored = {
        row.seq: row
        for row in AuditEvent.objects.filter(link__seq__in=[s for s in seqs if s]).select_related(
            "link"
        )
    }
    for row in rows:
        try:
            seq = int(row["seq"])
            recomputed = _hash_of(row)
        except (KeyError, TypeError, ValueError):
            check.problems.append(_("Une ligne de l'export est incomplète ou mal formée."))
            continue
        if recomputed != row["row_hash"]:
            check.problems.append(
                _("Ligne %(seq)s : son empreinte ne correspond pas à son contenu.") % {"seq": seq}
            )
            continue
        db_row = stored.get(seq)
        if db_row is None:
            check.problems.append(
                _("Ligne %(seq)s : absente du journal de l'opérateur.") % {"seq": seq}
            )
            continue
        if db_row.row_hash != row["row_hash"] or db_row.prev_hash != row["prev_hash"]:
            check.problems.append(
                _("Ligne %(seq)s : différente de celle du journal de l'opérateur.") % {"seq": seq}
            )
            continue
        if _hash_of(export_row(db_row)) != db_row.row_hash:
            check.problems.append(
                _("Ligne %(seq)s : le journal de l'opérateur a été altéré.") % {"seq": seq}
            )
            continue
        check.checked += 1
    return check


# --- PDF ----------------------------------------------------------------------------------------

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


def _unicode_font() -> Path | None:
    configured = getattr(settings, "AUDIT_PDF_FONT", "")
    for candidate in (configured, *_FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def to_latin1(text: str) -> str:
    """Text the PDF core fonts can draw: Latin-1 kept (é, è, à, ç…), other characters
    decomposed to their base letter, or replaced by "?"."""
    out = []
    for char in text:
        if char in "\u2019\u2018":
            out.append("'")
        elif char in "\u201c\u201d":
            out.append('"')
        elif char in "\u2013\u2014\u2192":
            out.append("-")
        elif ord(char) < 256:
            out.append(char)
        else:
            base = unicodedata.normalize("NFKD", char)[:1]
            out.append(base if base and ord(base) < 256 else "?")
    return "".join(out)


def trace_pdf(*, trace: Trace, exported_by: str) -> bytes:
    """The trace as a printable PDF: the message, each recipient's route and status, then every
    audit row in chain order with its rank and hash (the JSON export carries all fields)."""
    from fpdf import FPDF

    from apps.audit.trace import recipient_lines, trace_steps

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    font_path = _unicode_font()
    if font_path is not None:
        pdf.add_font("body", fname=str(font_path))
        family, clean = "body", str
    else:
        family, clean = "helvetica", to_latin1
    pdf.set_title(clean(_("Traçabilité d'un message")))
    pdf.set_creator(clean(settings.SITE_NAME))
    pdf.add_page()
    width = pdf.epw

    def line(text: str, *, size: int = 10, height: float = 5) -> None:
        pdf.set_font(family, size=size)
        pdf.multi_cell(width, height, clean(text), new_x="LMARGIN", new_y="NEXT")

    line(_("Traçabilité d'un message"), size=16, height=8)
    line(_("Message-ID : %(msgid)s") % {"msgid": trace.message.message_id})
    line(
        _("Exporté le %(when)s par %(who)s (%(site)s)")
        % {
            "when": timezone.localtime().strftime("%d/%m/%Y %H:%M:%S"),
            "who": exported_by,
            "site": settings.SITE_NAME,
        }
    )
    pdf.ln(3)
    recipients = recipient_lines(trace)
    if recipients:
        line(_("Destinataires"), size=12, height=7)
        for item in recipients:
            line(f"- {item.recipient} : {item.route_label}, {item.status_label}", size=9)
        pdf.ln(2)
    line(_("Étapes, dans l'ordre du journal"), size=12, height=7)
    for step in trace_steps(trace):
        line(f"{step.when_text}  —  {step.title}", size=10)
        if step.details:
            line("    " + " · ".join(step.details), size=8, height=4)
        proof = _("rang %(seq)s · empreinte %(hash)s") % {"seq": step.seq, "hash": step.row_hash}
        line("    " + proof, size=7, height=4)
    pdf.ln(3)
    line(
        _(
            "Chaque étape est une ligne du journal d'audit chaîné de l'opérateur : son empreinte "
            "SHA-256 couvre son contenu et l'empreinte de la ligne précédente. L'export JSON "
            "contient tous les champs pour recalculer ces empreintes."
        ),
        size=8,
        height=4,
    )
    return bytes(pdf.output())


# --- Staff exports (streamed) -------------------------------------------------------------------

CSV_COLUMNS = (
    "seq", "created_at", "event", "event_name", "event_label", "actor_ref", "actor_label", "ip",
    "user_agent", "target_type", "target_id", "detail", "prev_hash", "row_hash",
)  # fmt: skip


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_safe(value: Any) -> str:
    """Cells a spreadsheet would run as a formula are prefixed with a quote (CSV injection)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def rows_csv(rows: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(CSV_COLUMNS)  # BOM: spreadsheets read UTF-8
    for row in rows:
        data = export_row(row)
        yield writer.writerow(
            [data[name] if isinstance(data[name], int) else _csv_safe(data[name] or "")
             for name in CSV_COLUMNS]
        )  # fmt: skip


def rows_json(rows: Iterable[AuditEvent], *, criteria: Mapping[str, Any], by: str) -> Iterator[str]:
    """A JSON document written piece by piece: memory stays flat whatever the number of rows."""
    head = {
        "format": EXPORT_FORMAT,
        "kind": "staff_search",
        "generated_at": timestamp(timezone.now()),
        "generated_by": by,
        "criteria": dict(criteria),
        "chain": CHAIN_DESCRIPTION,
        "head": _head(),
    }
    opening = json.dumps(head, ensure_ascii=False)
    yield opening[:-1] + ', "rows": [\n'
    first = True
    for row in rows:
        yield ("" if first else ",\n") + json.dumps(export_row(row), ensure_ascii=False)
        first = False
    yield "\n]}\n"


def csv_text(rows: Iterable[AuditEvent]) -> str:
    """The CSV export as one string (tests, small exports)."""
    buffer = io.StringIO()
    for chunk in rows_csv(rows):
        buffer.write(chunk)
    return buffer.getvalue()
