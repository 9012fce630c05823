"""Loading a pair of Annuaire Santé extracts into the spare slot, then switching to it.

Both files are streamed (memory stays bounded: a set of the PER mailboxes' IdNat and a counter
of distinct last names, nothing per activity row). PostgreSQL gets ``COPY``; SQLite gets batched
inserts committed batch by batch, so the web keeps writing meanwhile. The slot's indexes are
dropped before the load and built after it, which is much faster than maintaining them row by
row. Nothing of the slot in service is touched until the final one-row switch, so a failed or
refused import leaves the last good snapshot in place.
"""

import contextlib
import fcntl
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.events import Event
from apps.audit.services import record
from apps.core.exceptions import ApplicationError
from apps.directory import extracts
from apps.directory.extracts import ActivityRecord, LineError, MailboxRecord, normalize_search
from apps.directory.models import SLOT_MODELS, SLOTS, DirectoryState, ImportRun

logger = logging.getLogger(__name__)

PG_LOCK_KEY = 0x6D73_6469_7265_6374  # "msdirect"
SQLITE_BATCH = 5000
SAMPLES_KEPT = 20

Progress = Callable[[str, int, float], None]


class DirectoryImportError(ApplicationError):
    pass


@dataclass
class LoadReport:
    rows: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    samples: list[dict] = field(default_factory=list)

    def reject(self, *, file: str, error: LineError) -> None:
        self.rejected += 1
        self.reasons[error.reason] += 1
        if len(self.samples) < SAMPLES_KEPT:
            self.samples.append({"file": file, "line": error.line, "reason": error.reason})


# --- Rows ---------------------------------------------------------------------------------------

ACTIVITY_COLUMNS = (
    "idnat", "id_type", "civility", "last_name", "first_name", "key_lf", "profession_code",
    "profession_label", "specialty_code", "specialty_label", "mode_label", "sector_label",
    "structure_name", "address", "postcode", "town", "town_key", "department_code", "phone",
    "has_mssante",
)  # fmt: skip
MAILBOX_COLUMNS = (
    "address", "bal_type", "idnat", "civility", "last_name", "first_name", "key_lf",
    "profession_code", "profession_label", "specialty_label", "structure_name", "service",
    "postcode", "town", "department_code",
)  # fmt: skip


def _cut(value: str, size: int) -> str:
    return value[:size]


def _street(record: ActivityRecord) -> str:
    parts = [
        record.address_recipient,
        record.address_place,
        " ".join(
            p
            for p in (
                record.street_number,
                record.street_repeat,
                record.street_type_label,
                record.street_label,
            )
            if p
        ),
        record.distribution,
    ]
    return ", ".join(p for p in parts if p)


def _department(record: ActivityRecord) -> str:
    if record.department_code:
        return record.department_code[:3]
    postcode = record.postcode
    if len(postcode) == 5 and postcode.isdigit():
        if postcode.startswith("97"):
            return postcode[:3]
        if postcode.startswith("20"):
            return "2A" if postcode < "20200" else "2B"
        return postcode[:2]
    return ""


def activity_row(record: ActivityRecord, *, has_mssante: bool) -> tuple:
    civility = record.civility_code_ex or record.civility_code
    specialty = record.skill_code if record.skill_type_code in ("S", "") else ""
    return (
        record.idnat,
        record.id_type[:1],
        _cut(civility, 10),
        _cut(record.last_name, 120),
        _cut(record.first_name, 120),
        _cut(normalize_search(f"{record.last_name} {record.first_name}"), 200),
        _cut(record.profession_code, 4),
        _cut(record.profession_label, 80),
        _cut(specialty, 10),
        _cut(record.skill_label if specialty else "", 120),
        _cut(record.mode_label, 40),
        _cut(record.sector_label, 120),
        _cut(record.sign_name or record.structure_name, 200),
        _cut(_street(record), 300),
        _cut(record.postcode or record.cedex[:5], 10),
        _cut(record.town, 100),
        _cut(normalize_search(record.town), 100),
        _department(record),
        _cut(record.phone, 20),
        has_mssante,
    )


def _town_from_routing(line: str) -> str:
    """``69003 LYON`` → ``LYON`` (the L6 line of the mailbox file)."""
    head, _, tail = line.partition(" ")
    return tail if head.isdigit() else line


def mailbox_row(record: MailboxRecord) -> tuple:
    if record.bal_type == "PER" and record.last_name:
        key = normalize_search(f"{record.last_name} {record.first_name}")
    else:
        key = normalize_search(f"{record.structure_name} {record.service}")
    return (
        _cut(record.address.lower(), 254),
        _cut(record.bal_type, 3),
        _cut(record.idnat, 12),
        _cut(record.civility, 10),
        _cut(record.last_name, 120),
        _cut(record.first_name, 120),
        _cut(key, 200),
        _cut(record.profession_code, 4),
        _cut(record.profession_label, 80),
        _cut(record.skill_label, 120),
        _cut(record.structure_name, 200),
        _cut(record.service, 200),
        _cut(record.postcode, 10),
        _cut(_town_from_routing(record.routing_line), 100),
        _cut(record.department, 3),
    )


# --- Writing to the database ------------------------------------------------------------------


def _write_rows(model, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    if connection.vendor == "postgresql":
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({names}) VALUES ({placeholders})"  # noqa: S608 - fixed names
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= SQLITE_BATCH:
            _sqlite_insert(sql, batch)
            batch = []
    if batch:
        _sqlite_insert(sql, batch)


def _sqlite_insert(sql: str, batch: list[tuple]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, batch)


def _slot_prepare(slot: str) -> None:
    """Empty the spare slot and drop its indexes (built again after the load)."""
    models = SLOT_MODELS[slot]
    with connection.cursor() as cursor:
        for model in models.values():
            table = connection.ops.quote_name(model._meta.db_table)
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {table}")
            else:
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP INDEX IF EXISTS dir_name_{slot}_trgm")
    for model in models.values():
        for index in model._meta.indexes:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP INDEX IF EXISTS {connection.ops.quote_name(index.name)}")


def _slot_index(slot: str) -> None:
    models = SLOT_MODELS[slot]
    # The editor only renders SQL here (not entered: SQLite refuses that inside a transaction).
    editor = connection.schema_editor()
    with connection.cursor() as cursor:
        for model in models.values():
            for index in model._meta.indexes:
                cursor.execute(str(index.create_sql(model, editor)))
        if connection.vendor == "postgresql":
            name_table = models["name"]._meta.db_table
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS dir_name_{slot}_trgm ON {name_table} "
                "USING gin (key gin_trgm_ops)"
            )
            for model in models.values():
                cursor.execute(f"ANALYZE {model._meta.db_table}")
        else:
            cursor.execute("ANALYZE")


@contextlib.contextmanager
def _import_lock():
    """One import at a time: an advisory lock on PostgreSQL, a lock file next to SQLite."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [PG_LOCK_KEY])
            if not cursor.fetchone()[0]:
                raise DirectoryImportError("Un autre import de l'annuaire est en cours.")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [PG_LOCK_KEY])
        return
    path = Path(settings.VAR_DIR) / "directory-import.lock"
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DirectoryImportError("Un autre import de l'annuaire est en cours.") from exc
        yield


# --- The import ---------------------------------------------------------------------------------


def _counted(
    records: Iterator, *, report: LoadReport, file: str, kind: str, progress: Progress | None
) -> Iterator:
    started = time.monotonic()
    for item in records:
        if isinstance(item, LineError):
            report.reject(file=file, error=item)
            continue
        report.rows += 1
        if progress is not None and report.rows % 50_000 == 0:
            progress(kind, report.rows, time.monotonic() - started)
        yield item


def directory_import(
    *,
    activities: Path,
    mssante: Path,
    progress: Progress | None = None,
    force: bool = False,
) -> ImportRun:
    """Import both extracts into the spare slot and put it in service.

    Refused, with the current directory kept, when a header lacks required columns, when more
    than ``DIRECTORY_MAX_REJECTED_RATIO`` of the lines are broken, or (unless ``force``) when the
    new extract has fewer than ``DIRECTORY_MIN_KEPT_RATIO`` of the rows in service (a truncated
    download must not empty the directory).
    """
    run = ImportRun.objects.create(activities_source=str(activities), mssante_source=str(mssante))
    try:
        with _import_lock():
            _import_into_spare_slot(
                run=run, activities=activities, mssante=mssante, progress=progress, force=force
            )
    except (ApplicationError, OSError) as exc:
        message = exc.message if isinstance(exc, ApplicationError) else f"{type(exc).__name__}"
        import_failed(run=run, message=message)
        if isinstance(exc, DirectoryImportError):
            raise
        raise DirectoryImportError(message) from exc
    return run


@transaction.atomic
def import_failed(*, run: ImportRun, message: str) -> None:
    """Record a refused or failed import (the directory in service stays as it was)."""
    run.status = ImportRun.Status.FAILED
    run.finished_at = timezone.now()
    run.error = message[:2000]
    run.save()
    record(
        event=Event.DIRECTORY_IMPORT_FAILED,
        target=run,
        extra={"rejected_rows": run.rejected_rows},
    )
    logger.warning("directory import failed", extra={"import_run": run.pk})


def _import_into_spare_slot(
    *, run: ImportRun, activities: Path, mssante: Path, progress: Progress | None, force: bool
) -> None:
    started = time.monotonic()
    state = DirectoryState.objects.first()
    active = state.active_slot if state else ""
    slot = next(s for s in SLOTS if s != active)
    run.slot = slot
    models = SLOT_MODELS[slot]

    with (
        extracts.open_extract(mssante, "mssante") as bal_stream,
        extracts.open_extract(activities, "activities") as act_stream,
    ):
        # Both headers are checked (ExtractError) before anything is written.
        mailbox_records = extracts.iter_mailboxes(bal_stream, name=mssante.name)
        activity_records = extracts.iter_activities(act_stream, name=activities.name)
        _slot_prepare(slot)

        bal_report, act_report = LoadReport(), LoadReport()
        per_idnats: set[str] = set()

        def mailbox_rows() -> Iterator[tuple]:
            seen: set[str] = set()
            for rec in _counted(
                mailbox_records,
                report=bal_report,
                file=mssante.name,
                kind="mssante",
                progress=progress,
            ):
                address = rec.address.lower()
                if address in seen:  # a few addresses appear twice in the real file
                    bal_report.rows -= 1
                    bal_report.reasons["adresse en double (ignorée)"] += 1
                    continue
                seen.add(address)
                if rec.idnat:
                    per_idnats.add(rec.idnat)
                yield mailbox_row(rec)

        _write_rows(models["mailbox"], MAILBOX_COLUMNS, mailbox_rows())

        names: Counter[str] = Counter()
        people_seen: set[str] = set()

        def activity_rows() -> Iterator[tuple]:
            for rec in _counted(
                activity_records,
                report=act_report,
                file=activities.name,
                kind="activities",
                progress=progress,
            ):
                if rec.idnat not in people_seen:
                    people_seen.add(rec.idnat)
                    key = normalize_search(rec.last_name)
                    if key:
                        names[key[:120]] += 1
                yield activity_row(rec, has_mssante=rec.idnat in per_idnats)

        _write_rows(models["activity"], ACTIVITY_COLUMNS, activity_rows())
        people_seen.clear()  # free it before the indexes are built
        _write_rows(models["name"], ("key", "people"), names.items())

    run.activity_rows, run.mailbox_rows = act_report.rows, bal_report.rows
    run.rejected_rows = act_report.rejected + bal_report.rejected
    run.report = {
        "reasons": dict((act_report.reasons + bal_report.reasons).most_common(50)),
        "samples": (act_report.samples + bal_report.samples)[:SAMPLES_KEPT],
        "people": sum(names.values()),
    }
    _check_sanity(run=run, state=state, force=force)
    _slot_index(slot)
    run.report["seconds"] = round(time.monotonic() - started, 1)
    _switch_to(run=run, slot=slot)


def _check_sanity(*, run: ImportRun, state: DirectoryState | None, force: bool) -> None:
    read = run.activity_rows + run.mailbox_rows + run.rejected_rows
    if run.activity_rows == 0:
        raise DirectoryImportError("Aucune activité valide dans l'extrait : import refusé.")
    if read and run.rejected_rows / read > settings.DIRECTORY_MAX_REJECTED_RATIO:
        raise DirectoryImportError(
            f"{run.rejected_rows} lignes rejetées sur {read} : trop d'erreurs, import refusé."
        )
    previous = state.active_run if state else None
    if previous is not None and not force:
        floor = previous.activity_rows * settings.DIRECTORY_MIN_KEPT_RATIO
        if run.activity_rows < floor:
            raise DirectoryImportError(
                f"L'extrait n'a que {run.activity_rows} activités contre "
                f"{previous.activity_rows} en service : import refusé (--force pour passer outre)."
            )


@transaction.atomic
def _switch_to(*, run: ImportRun, slot: str) -> None:
    state, _ = DirectoryState.objects.select_for_update().get_or_create(pk=1)
    if state.active_run_id:
        ImportRun.objects.filter(pk=state.active_run_id).update(status=ImportRun.Status.SUPERSEDED)
    state.active_slot = slot
    state.active_run = run
    state.changed_at = timezone.now()
    state.save()
    run.status = ImportRun.Status.ACTIVE
    run.finished_at = timezone.now()
    run.save()
    record(
        event=Event.DIRECTORY_IMPORTED,
        target=run,
        extra={
            "slot": slot,
            "activity_rows": run.activity_rows,
            "mailbox_rows": run.mailbox_rows,
            "rejected_rows": run.rejected_rows,
        },
    )
    logger.info(
        "directory import in service",
        extra={"import_run": run.pk, "activity_rows": run.activity_rows},
    )
