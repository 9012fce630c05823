"""Writing the audit trail: ``record()`` is the only way in.

How concurrent writers keep one chain (no fork, no gap)
-------------------------------------------------------
Each row needs the previous row's hash, so appends are serialised: ``record()`` takes a
transaction-level PostgreSQL advisory lock (``pg_advisory_xact_lock(CHAIN_LOCK_KEY)``), then
reads the head (``ORDER BY seq DESC LIMIT 1`` on the unique ``seq`` index), then inserts
``seq + 1``. Under READ COMMITTED each statement takes a fresh snapshot, so the head read after
the lock is granted sees the row the previous holder committed. The lock is released when the
caller's transaction ends (commit or rollback): a rolled-back event leaves no gap, because the
next writer reads the same head again. The unique constraints on ``seq`` and ``row_hash`` are the
guard behind the lock: a writer that somehow bypassed it gets an IntegrityError, never a fork.

An advisory lock rather than ``SELECT … FOR UPDATE`` on a one-row head table: the same
serialisation, without an extra UPDATE per event (a hot row rewritten thousands of times a
minute, dead tuples for vacuum) and without a second table that could disagree with the chain.
The price is the same for both: the lock is held until the caller commits, so ``record()``
belongs at the end of a transaction (after slow work), and a commit's WAL flush is part of the
time the next writer waits. Figures for 1 and 8 writers are in BENCHMARKS.md
(``bench/bench_audit.py``).

On SQLite no lock is needed: the project opens IMMEDIATE transactions (settings), which take the
database write lock before the first statement, so writers are already one at a time.
"""

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, canonical_ip, compute_row_hash
from apps.audit.events import Event
from apps.audit.models import AuditCheckpoint, AuditEvent
from apps.core.request_meta import RequestMeta

# Key of the PostgreSQL advisory lock that serialises appends to the chain: "mssaudit" in ASCII.
CHAIN_LOCK_KEY = 0x6D73_7361_7564_6974

# ``extra`` keys containing one of these words are refused, unless their value is a boolean (one
# bit holds no secret: ``{"backup_codes_made": True}`` passes): the audit trail must never hold
# message content, credentials or one-time codes. Whole words only: "status_id" passes.
SECRET_WORDS = frozenset(
    {
        "password", "passwords", "passwd", "token", "tokens", "code", "codes",
        "secret", "secrets", "otp", "totp", "hotp", "body", "subject",
    }
)  # fmt: skip
_WORD_BOUNDARY = re.compile(r"[^a-z0-9]+")
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

Target = models.Model | tuple[str, Any] | None


@transaction.atomic
def record(
    *,
    event: Event,
    actor=None,
    target: Target = None,
    meta: RequestMeta | None = None,
    extra: dict[str, Any] | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    """Append one event to the audit trail, in the caller's transaction.

    ``actor`` is the user who acted (None or AnonymousUser for nobody); ``actor_label`` defaults
    to their e-mail address and may name someone without an account (a failed login's address).
    ``target`` is a saved model instance or a ``("app_label.model", id)`` pair. ``extra`` holds
    ids and old/new values: JSON types without floats, and no key that names a secret
    (``SECRET_WORDS``) unless its value is a boolean, else ValueError. ``meta.session_key`` is
    never stored.

    On PostgreSQL appends are serialised by an advisory lock held until the caller's transaction
    ends, so call this late in a transaction, not before slow work. Under READ COMMITTED (the
    default) the last row is read after the lock is taken and is therefore current.
    """
    actor, fields = _fields(
        event=event, actor=actor, target=target, meta=meta, extra=extra, actor_label=actor_label
    )
    chain_lock()
    seq, prev_hash = _next_link()
    fields["seq"] = seq
    fields["created_at"] = timezone.now()
    row_hash = compute_row_hash(prev_hash=prev_hash, **fields)
    return AuditEvent.objects.create(actor=actor, prev_hash=prev_hash, row_hash=row_hash, **fields)


@dataclass(frozen=True)
class AuditEntry:
    """One event for ``record_many``: the arguments of ``record``."""

    event: Event
    actor: Any = None
    target: Target = None
    meta: RequestMeta | None = None
    extra: dict[str, Any] | None = None
    actor_label: str | None = None


@transaction.atomic
def record_many(*, entries: Sequence[AuditEntry]) -> list[AuditEvent]:
    """Append several events, in this order, in the caller's transaction: one event per entry,
    each its own link of the chain, exactly as the same ``record`` calls would make them, but
    with one lock, one read of the head and one multi-row INSERT (for writers that accept many
    things at once, such as the SMTP gateway's group commit). Every entry is checked before
    anything is written: one bad ``extra`` raises ValueError and nothing is appended."""
    prepared = [
        _fields(
            event=entry.event,
            actor=entry.actor,
            target=entry.target,
            meta=entry.meta,
            extra=entry.extra,
            actor_label=entry.actor_label,
        )
        for entry in entries
    ]
    if not prepared:
        return []
    chain_lock()
    seq, prev_hash = _next_link()
    rows = []
    for offset, (actor, fields) in enumerate(prepared):
        fields["seq"] = seq + offset
        fields["created_at"] = timezone.now()
        row_hash = compute_row_hash(prev_hash=prev_hash, **fields)
        rows.append(AuditEvent(actor=actor, prev_hash=prev_hash, row_hash=row_hash, **fields))
        prev_hash = row_hash
    # The model's manager refuses bulk_create so that nothing else writes the chain this way.
    return models.QuerySet.bulk_create(AuditEvent.objects.all(), rows)


def _fields(
    *, event, actor, target: Target, meta: RequestMeta | None, extra, actor_label: str | None
) -> tuple[Any, dict[str, Any]]:
    """The actor (None for nobody) and the hashed fields of an event, but its seq and date."""
    event = Event(event)
    if actor is not None and not actor.is_authenticated:
        actor = None
    if actor_label is None:
        actor_label = actor.email if actor is not None else ""
    target_type, target_id = _target_key(target)
    return actor, {
        "event": int(event),
        "actor_ref": str(actor.pk) if actor is not None else "",
        "actor_label": _clean_text(actor_label, 254),
        "ip": _clean_ip(meta.ip) if meta else None,
        "user_agent": _clean_text(meta.user_agent, 300) if meta else "",
        "target_type": target_type,
        "target_id": target_id,
        "detail": _clean_detail(extra),
    }


def _next_link() -> tuple[int, str]:
    """The seq and prev_hash of the next row: after the head row, or after the last row a
    retention purge removed when none is left (the purge keeps the head, so only by hand)."""
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "row_hash").first()
    if last is None:
        last = (
            AuditCheckpoint.objects.order_by("-last_seq")
            .values_list("last_seq", "last_hash")
            .first()
        )
    return (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)


def chain_lock() -> None:
    # SQLite needs no lock: the project opens IMMEDIATE transactions, which take the write lock
    # up front. Elsewhere, the unique ``seq`` turns a lost race into an error, never a fork.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


def _target_key(target: Target) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, models.Model):
        if target.pk is None:
            raise ValueError("An audit target must be saved first.")
        target_type, target_id = target._meta.label_lower, str(target.pk)
    elif isinstance(target, tuple) and len(target) == 2:
        target_type, target_id = str(target[0]), str(target[1])
    else:
        raise ValueError("An audit target is a model instance or a (type, id) pair.")
    if len(target_type) > 50 or len(target_id) > 64:
        raise ValueError("Audit target type or id too long.")
    return target_type, target_id


def _clean_text(value: str, max_length: int) -> str:
    return value.replace("\x00", "")[:max_length]


def _clean_ip(ip: str | None) -> str | None:
    """A valid address in its canonical form, or None: a garbled address from a header must
    not make the audited action fail."""
    if not ip:
        return None
    address = ip.split("%", 1)[0]  # no IPv6 zone: PostgreSQL's inet refuses it
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None
    return canonical_ip(address)


def _clean_detail(extra: dict[str, Any] | None) -> dict[str, Any]:
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise ValueError("Audit extra must be a dict.")
    return _checked(extra, "extra")


def _checked(value: Any, path: str) -> Any:
    """``value`` as plain JSON types (tuples become lists, as they come back from the
    database), after refusing what cannot be stored or hashed the same way on every database."""
    if isinstance(value, dict):
        clean = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"Audit {path} keys must be strings, not {key!r}.")
            words = _WORD_BOUNDARY.split(_CAMEL_HUMP.sub("_", key).lower())
            if SECRET_WORDS.intersection(words) and not isinstance(item, bool):
                raise ValueError(f"Audit {path}[{key!r}] looks like a secret or message content.")
            clean[key] = _checked(item, f"{path}[{key!r}]")
        return clean
    if isinstance(value, list | tuple):
        return [_checked(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"Audit {path} contains a NUL character.")
        return str(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        # PostgreSQL's jsonb does not give floats back as written (1e20 returns as an integer),
        # which would break the hash: store decimals as strings.
        raise ValueError(f"Audit {path} is a float; store it as a string.")
    raise ValueError(f"Audit {path} is not JSON-serialisable: {type(value).__name__}.")
