"""Checking the audit trail as stored: retention checkpoints, the hash chain, the anchors.

``chain_verify`` reads the links in keyset batches (``WHERE seq > last ORDER BY seq LIMIT n``
on the links' primary key), each joined to its event, so memory stays bounded whatever the size
of the trail and no server-side cursor is needed; on PostgreSQL it runs in one REPEATABLE READ,
READ ONLY transaction so that a purge or new rows committed meanwhile do not show up half-way.
An event without a link below the sealer's watermark (``AuditSealState.low``) escaped the chain
and is reported too. ``integrity_check`` is the daily task's service: it records the outcome and
alerts staff on failure.

After a retention purge the chain starts at the latest checkpoint: the first remaining row must
link to the checkpoint's ``last_hash``, the checkpoints must chain from seq 1, and the
``AUDIT_PURGED`` event recorded with the latest checkpoint (inside the verified chain) must
repeat its range and hashes. Anchors whose seq was purged can no longer be compared to a row:
their signature is still checked and they are counted apart ("before the purge"), except one
that names exactly the last purged row, which is compared to the checkpoint's ``last_hash``.
"""

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Min

from apps.audit.anchors import anchor_private_key, anchor_signature_valid, anchors_read
from apps.audit.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    ChainReport,
    verify_checkpoints,
    verify_rows,
)
from apps.audit.events import Event
from apps.audit.models import AuditCheckpoint, AuditEvent, AuditLink, AuditSealState
from apps.audit.services import record, seal

logger = logging.getLogger(__name__)

COLUMNS = ("id", "prev_hash", "row_hash", *HASHED_FIELDS)
# The same, read from a link and its event.
_LINK_COLUMNS = tuple(
    "event_id" if name == "id" else name if name in ("seq", "prev_hash", "row_hash") else
    f"event__{name}"
    for name in COLUMNS
)  # fmt: skip
BATCH_SIZE = 5000


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    chain: ChainReport
    # The seq the chain check started at and the rows a retention purge removed before it.
    start_seq: int
    purged: int
    problem: str | None = None
    anchors_checked: int = 0
    anchors_before_purge: int = 0
    # Events recorded but not sealed yet (recorded during the check, or left unsealed on purpose).
    unsealed: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def head_seq(self) -> int:
        return self.start_seq + self.chain.verified - 1


def chain_verify(
    *,
    from_seq: int = 1,
    anchors_dir: Path | None = None,
    public_key: Ed25519PublicKey | None = None,
    batch_size: int = BATCH_SIZE,
    seal_first: bool = True,
) -> IntegrityReport:
    """Verify checkpoints, then the chain from ``from_seq`` (trusting the row before it) or
    from the latest checkpoint, then, with ``anchors_dir``, every anchor found there against
    ``public_key`` (default: the operator key's public half). Stops at the first problem.
    Events not sealed yet are sealed first, unless ``seal_first`` is False (a read-only
    database): then they are left out and counted in ``unsealed``."""
    if seal_first:
        seal()
    with _snapshot():
        checkpoints = list(AuditCheckpoint.objects.order_by("last_seq").values())
        latest = checkpoints[-1] if checkpoints else None
        purged = sum(checkpoint["count"] for checkpoint in checkpoints)
        start_seq, prev_hash = (
            (latest["last_seq"] + 1, latest["last_hash"]) if latest else (1, GENESIS_HASH)
        )
        problem = verify_checkpoints(checkpoints)
        if problem is None and latest is not None:
            problem = _leftover_rows(latest)
        if problem is not None:
            return IntegrityReport(
                ChainReport(0, prev_hash), start_seq, purged, problem=f"audit {problem}"
            )
        if from_seq > start_seq:
            previous = (
                AuditLink.objects.filter(seq__lt=from_seq)
                .order_by("-seq")
                .values_list("seq", "row_hash")
                .first()
            )
            if previous is not None and previous[0] >= start_seq:
                start_seq, prev_hash = previous[0] + 1, previous[1]
        rows = rows_stream(start_seq=max(from_seq, start_seq), size=batch_size)
        report = verify_rows(rows, prev_hash=prev_hash, next_seq=start_seq)
        if report.broken is not None:
            broken = report.broken
            problem = (
                f"audit chain broken at seq {broken.seq} (id {broken.id}): {broken.reason} "
                f"({report.verified} events verified before it)"
            )
            return IntegrityReport(report, start_seq, purged, problem=problem)
        unsealed, problem = _unsealed()
        if problem is None and latest is not None:
            problem = _purge_event_problem(latest)
        checked = before_purge = 0
        if problem is None and anchors_dir is not None:
            key = public_key or anchor_private_key().public_key()
            checked, before_purge, problem = _check_anchors(
                anchors_dir, key, latest=latest, start_seq=start_seq,
                head_seq=start_seq + report.verified - 1,
            )  # fmt: skip
        return IntegrityReport(
            report, start_seq, purged, problem, checked, before_purge, unsealed=unsealed
        )


@contextlib.contextmanager
def _snapshot() -> Iterator[None]:
    """One consistent snapshot on PostgreSQL (unless the caller's transaction already has one).
    Not on SQLite, where the project's IMMEDIATE transactions would hold the write lock for the
    whole check; there a purge committed during a check can make that check fail once."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def rows_stream(
    *, start_seq: int, stop_seq: int | None = None, size: int = BATCH_SIZE
) -> Iterator[dict[str, Any]]:
    """Rows from ``start_seq`` (to ``stop_seq``) in seq order, as mappings for ``verify_rows``,
    ``size`` at a time (keyset pagination on the links' primary key, each joined to its event:
    bounded memory, no server-side cursor). ``id`` is the event's."""
    last = start_seq - 1
    rows = AuditLink.objects.order_by("seq")
    if stop_seq is not None:
        rows = rows.filter(seq__lte=stop_seq)
    while True:
        batch = list(rows.filter(seq__gt=last).values_list(*_LINK_COLUMNS)[:size])
        for row in batch:
            yield dict(zip(COLUMNS, row, strict=True))
        if len(batch) < size:
            return
        last = batch[-1][COLUMNS.index("seq")]


def _unsealed() -> tuple[int, str | None]:
    """How many events have no link yet, and a problem if one of them should have one: every
    event up to the sealer's ``low`` was sealed, so an unlinked one there escaped the chain."""
    low = AuditSealState.objects.filter(pk=1).values_list("low", flat=True).first() or 0
    found = AuditEvent.objects.filter(link__isnull=True).aggregate(
        count=Count("id"), first=Min("id")
    )
    if found["first"] is not None and found["first"] <= low:
        return found["count"], (
            f"audit event id {found['first']} is not in the chain (the events up to id {low} "
            "were all sealed)"
        )
    return found["count"], None


def _leftover_rows(latest: dict[str, Any]) -> str | None:
    if AuditLink.objects.filter(seq__lte=latest["last_seq"]).exists():
        return (
            f"checkpoint {latest['first_seq']}-{latest['last_seq']}: rows it says were purged "
            "are still there"
        )
    return None


def _purge_event_problem(latest: dict[str, Any]) -> str | None:
    """The AUDIT_PURGED event of the latest purge, in the verified chain, must describe it."""
    event = (
        AuditEvent.objects.filter(
            event=Event.AUDIT_PURGED,
            link__seq__gt=latest["last_seq"],
            detail__last_seq=latest["last_seq"],
        )
        .order_by("link__seq")
        .values_list("detail", flat=True)
        .first()
    )
    expected = {
        "first_seq": latest["first_seq"],
        "last_seq": latest["last_seq"],
        "count": latest["count"],
        "last_hash": latest["last_hash"],
        "checkpoint_hash": latest["checkpoint_hash"],
    }
    if event is None or any(event.get(key) != value for key, value in expected.items()):
        return (
            f"audit checkpoint {latest['first_seq']}-{latest['last_seq']}: does not match the "
            "AUDIT_PURGED event of the chain"
        )
    return None


def _check_anchors(
    directory: Path,
    key: Ed25519PublicKey,
    *,
    latest: dict[str, Any] | None,
    start_seq: int,
    head_seq: int,
) -> tuple[int, int, str | None]:
    checked = before_purge = 0
    pending: dict[int, list[tuple[str, str]]] = {}

    def compare() -> str | None:
        links = AuditLink.objects.filter(seq__in=list(pending))
        stored = dict(links.values_list("seq", "row_hash"))
        for seq, anchors in sorted(pending.items()):
            for where, row_hash in anchors:
                if stored.get(seq) != row_hash:
                    return f"anchor {where} (seq {seq}): does not match the chain (rewritten?)"
        pending.clear()
        return None

    for stored in anchors_read(directory):
        anchor = stored.anchor
        if anchor is None or not anchor_signature_valid(anchor, key):
            return checked, before_purge, f"anchor {stored.where}: signature invalid"
        seq = anchor["seq"]
        if not isinstance(seq, int) or seq > head_seq:
            return (
                checked,
                before_purge,
                (
                    f"anchor {stored.where} (seq {seq}): beyond the head of the chain (seq "
                    f"{head_seq}): rows removed?"
                ),
            )
        checked += 1
        if seq < start_seq:
            if latest is not None and seq == latest["last_seq"]:
                if anchor["row_hash"] != latest["last_hash"]:
                    return (
                        checked,
                        before_purge,
                        (f"anchor {stored.where} (seq {seq}): does not match the checkpoint"),
                    )
            else:
                before_purge += 1
            continue
        pending.setdefault(seq, []).append((stored.where, anchor["row_hash"]))
        if len(pending) >= 1000 and (problem := compare()):
            return checked, before_purge, problem
    return checked, before_purge, compare() if pending else None


# --- The daily integrity check ------------------------------------------------------------


def integrity_check() -> IntegrityReport:
    """Verify the trail (and the anchors when ``AUDIT_ANCHOR_DIR`` holds some); record
    AUDIT_VERIFIED (one row a day) or AUDIT_VERIFY_FAILED, and then e-mail active staff."""
    directory = Path(settings.AUDIT_ANCHOR_DIR) if settings.AUDIT_ANCHOR_DIR else None
    report = chain_verify(anchors_dir=directory if directory and directory.is_dir() else None)
    with transaction.atomic():
        if report.ok:
            record(
                event=Event.AUDIT_VERIFIED,
                extra={
                    "verified": report.chain.verified, "head_seq": report.head_seq,
                    "head_hash": report.chain.head, "purged": report.purged,
                    "anchors": report.anchors_checked,
                },
            )  # fmt: skip
            logger.info("audit chain verified", extra={"verified": report.chain.verified})
            return report
        record(event=Event.AUDIT_VERIFY_FAILED, extra={"problem": report.problem[:500]})
        staff = list(
            get_user_model()
            .objects.filter(is_staff=True, is_active=True)
            .values_list("pk", flat=True)
        )
        transaction.on_commit(lambda: _alert_staff(staff, report.problem))
    logger.error("audit chain verification failed", extra={"problem": report.problem})
    return report


def _alert_staff(user_ids: list[int], problem: str) -> None:
    from apps.accounts.tasks import notify_audit_integrity_failure

    for user_id in user_ids:
        notify_audit_integrity_failure.delay(user_id, problem)
