"""Writing the audit trail: ``record()`` is the only way in; ``seal()`` chains what it wrote.

How concurrent writers keep one chain (no fork, no gap) without waiting for each other
-------------------------------------------------------------------------------------
Each row of the chain needs the previous row's hash, so its place in the chain must be given one
row at a time. If ``record()`` gave it, every transaction that records an event would hold the
chain's lock from that moment until its commit (its WAL flush included), and concurrent requests
would queue behind each other: 13 ms per event with 8 writers on PostgreSQL, measured.

So the two are split, and so are the tables:

1. ``record()`` only INSERTs the event (``AuditEvent``) in the caller's transaction, without any
   lock: it commits or rolls back with the action it describes, and a rolled-back event never
   existed. The row is written once and never updated.
2. ``seal()`` gives the committed events that have no link yet their place: under a
   transaction-level PostgreSQL advisory lock (``pg_advisory_xact_lock(CHAIN_LOCK_KEY)``; on
   SQLite the project's IMMEDIATE transactions already serialise writers) it reads the head (the
   link with the highest ``seq``), then the unlinked events in ``id`` order, and INSERTs their
   ``AuditLink`` rows (``seq = head + 1, + 2…``, ``prev_hash``, ``row_hash``). Under READ
   COMMITTED each statement takes a fresh snapshot, so reads made after the lock is granted see
   what the previous sealer committed; events still uncommitted are invisible and get sealed by
   the next run. The chain order is the sealing order.

Finding the unlinked events without a scan of the table nor an index written by ``record()``:
every event with ``id <= low`` (``AuditSealState``) is linked or was never committed, so the
sealer only reads ``id > low`` (the primary key) against the links' unique ``event_id``. ``low``
moves up in two steps on PostgreSQL, because a transaction may hold an id it has not committed:
a run notes ``mark_id``, the last id handed out by the sequence, then (in a later statement) takes
its own transaction id, ``mark_xid``; every transaction that can hold an id up to ``mark_id`` has
a smaller transaction id (``record()`` takes its transaction id before its row's id: see
``_insert_sql``). A later run whose snapshot ``xmin`` has reached ``mark_xid`` knows that all of
them have ended, so once it has sealed every visible event, ``low = mark_id``. On SQLite,
where the sealer holds the write lock, nothing is ever in progress: ``low`` is the last id sealed.

Sealing runs out of the requests: the ``audit.seal`` Celery beat task every
``AUDIT_SEAL_INTERVAL`` seconds, and before anything that reads hashes (``audit_verify``, the
daily check, anchors, retention purges, message traces and exports), so an event is chained
within seconds and every proof handed out is sealed. Until then the event is already protected
like a sealed one: on PostgreSQL the trigger of migration 0007 refuses every UPDATE and DELETE of
an event (but for ``actor_id`` set to NULL) and of a link; the models refuse changes in Python.
The unique ``seq``, ``row_hash`` and ``event_id`` of the links are the guard behind the lock: a
sealer that somehow bypassed it gets an IntegrityError, never a fork. Figures for 1 and 8
writers are in BENCHMARKS.md (``bench/bench_audit.py``).
"""

import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, HASHED_FIELDS, canonical_ip, compute_row_hash
from apps.audit.events import Event
from apps.audit.models import AuditCheckpoint, AuditEvent, AuditLink, AuditSealState
from apps.core.request_meta import RequestMeta

# Key of the PostgreSQL advisory lock that serialises sealing (and purges): "mssaudit" in ASCII.
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

    The row is written unsealed, without any lock: ``seal()`` gives it its place in the chain
    once the caller has committed (see the module's docstring).
    """
    actor, fields = _fields(
        event=event, actor=actor, target=target, meta=meta, extra=extra, actor_label=actor_label
    )
    return _insert([(actor, fields)], timezone.now())[0]


@dataclass(frozen=True)
class AuditEntry:
    """One event for ``record_many``: the arguments of ``record``."""

    event: Event
    actor: Any = None
    target: Target = None
    meta: RequestMeta | None = None
    extra: dict[str, Any] | None = None
    actor_label: str | None = None


def record_many(*, entries: Sequence[AuditEntry]) -> list[AuditEvent]:
    """Append several events, in this order, in the caller's transaction: one event per entry,
    each its own link of the chain, exactly as the same ``record`` calls would make them, but
    with one multi-row INSERT (for writers that accept many things at once, such as the SMTP
    gateway's group commit). Every entry is checked before anything is written: one bad
    ``extra`` raises ValueError and nothing is appended. Sealed later, in this order."""
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
    now = timezone.now()
    rows = []
    for start in range(0, len(prepared), _INSERT_BATCH):
        rows.extend(_insert(prepared[start : start + _INSERT_BATCH], now))
    return rows


# What record() writes, by one plain INSERT … RETURNING id: the ORM's save() would cost as much
# again in Python as the statement itself, on every request's path. The model refuses save(),
# update(), delete() and bulk_create(), so nothing else writes the trail.
_COLUMNS = (
    "created_at", "event", "actor_id", "actor_ref", "actor_label", "ip", "user_agent",
    "target_type", "target_id", "detail",
)  # fmt: skip
_INSERT_BATCH = 500  # rows per statement (SQLite allows 32,766 parameters)


@functools.cache
def _insert_sql(vendor: str, rows: int) -> str:
    """On PostgreSQL the first row's id is ``nextval`` behind ``pg_current_xact_id()``: the
    transaction has its transaction id before it takes an id from the sequence, which the
    sealer's ``mark_xid`` relies on (the other rows' ids come after the first row's insert,
    which needs the transaction id anyway)."""
    quote = connection.ops.quote_name
    table = quote(AuditEvent._meta.db_table)
    row_sql = ", ".join(["%s"] * len(_COLUMNS))
    columns = ", ".join(quote(column) for column in _COLUMNS)
    if vendor == "postgresql":
        first = f"(({_NEXT_ID_SQL}), {row_sql})"
        values = ", ".join([first] + [f"(DEFAULT, {row_sql})"] * (rows - 1))
        columns = f"{quote('id')}, {columns}"
    else:
        values = ", ".join([f"({row_sql})"] * rows)
    return (
        f"INSERT INTO {table} ({columns}) VALUES {values} "  # noqa: S608 - quoted names only
        f"RETURNING {quote('id')}"
    )


_SEQUENCE_SQL = "pg_get_serial_sequence('audit_auditevent', 'id')"
_NEXT_ID_SQL = f"SELECT nextval({_SEQUENCE_SQL}) WHERE pg_current_xact_id() IS NOT NULL"


def _insert(prepared: Sequence[tuple[Any, dict[str, Any]]], now) -> list[AuditEvent]:
    """INSERT the unsealed rows of ``_fields`` results; the model instances, with their ids."""
    ops = connection.ops
    created_at = ops.adapt_datetimefield_value(now)
    params = []
    for actor, fields in prepared:
        params += [
            created_at, fields["event"], actor.pk if actor is not None else None,
            fields["actor_ref"], fields["actor_label"], fields["ip"], fields["user_agent"],
            fields["target_type"], fields["target_id"],
            ops.adapt_json_value(fields["detail"], None),
        ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection.vendor, len(prepared)), params)
        ids = [pk for (pk,) in cursor.fetchall()]
    names = [field.attname for field in AuditEvent._meta.concrete_fields]
    rows = []
    for pk, (actor, fields) in zip(ids, prepared, strict=True):
        values = fields | {
            "id": pk, "created_at": now, "actor_id": actor.pk if actor is not None else None,
        }  # fmt: skip
        row = AuditEvent.from_db(connection.alias, names, [values[name] for name in names])
        if actor is not None:
            row.actor = actor
        row._state.fields_cache["link"] = None  # not sealed yet: no query to find out
        rows.append(row)
    return rows


# Unsealed rows sealed per transaction: a backlog (the sealer stopped for a while) is chained in
# several short transactions rather than one that would hold the lock for long.
SEAL_BATCH = 2000
_SEALED_FIELDS = tuple(field for field in HASHED_FIELDS if field != "seq")


def seal(*, batch_size: int = SEAL_BATCH) -> int:
    """Give every committed unsealed event its place in the chain, in ``id`` order; the number
    of events sealed. Safe to run anywhere and any number of times at once (the chain lock
    serialises sealers); inside a transaction, the lock is held until that transaction ends."""
    total = 0
    while True:
        with transaction.atomic():
            chain_lock()
            state = _state_get()
            low, safe = state.low, _mark_reached(state)
            # Before this transaction writes anything (see _mark_take).
            mark = _mark_take(low) if state.mark_id is None or safe else None
            seq, prev_hash = _next_link()
            pending = list(
                AuditEvent.objects.filter(id__gt=low, link__isnull=True)
                .order_by("id")
                .values_list("id", *_SEALED_FIELDS)[:batch_size]
            )
            links = []
            for row_id, *values in pending:
                row_hash = compute_row_hash(
                    prev_hash=prev_hash, seq=seq, **dict(zip(_SEALED_FIELDS, values, strict=True))
                )
                links.append((seq, row_id, prev_hash, row_hash))
                seq, prev_hash = seq + 1, row_hash
            if links:
                _links_insert(links)
            if len(links) < batch_size:  # every visible event is sealed: move ``low`` up
                _state_advance(
                    state, safe=safe, mark=mark, last_id=pending[-1][0] if pending else None
                )
        total += len(links)
        if len(links) < batch_size:
            return total


def _links_insert(links: list[tuple[int, int, str, str]]) -> None:
    table = connection.ops.quote_name(AuditLink._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s)"] * len(links))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (seq, event_id, prev_hash, row_hash) VALUES {values}",  # noqa: S608
            [value for link in links for value in link],
        )


def _state_get() -> AuditSealState:
    return AuditSealState.objects.filter(pk=1).first() or AuditSealState(pk=1)


def _mark_reached(state: AuditSealState) -> bool:
    """True when every transaction that could hold an event id up to ``state.mark_id`` has
    ended: no transaction older than ``mark_xid`` is running any more."""
    if state.mark_id is None or connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= %s::text::xid8", [state.mark_xid]
        )
        return cursor.fetchone()[0]


def _mark_take(low: int) -> tuple[int, int] | None:
    """PostgreSQL: the next ``(mark_id, mark_xid)``: the last id the sequence handed out, then
    this transaction's id, assigned right after reading it. Transaction ids are handed out in
    order, and a transaction holding an event id took its transaction id before it (see
    ``_insert_sql``), so every transaction that can hold an id up to ``mark_id`` has a smaller
    transaction id than ``mark_xid``. Only in a transaction that had no transaction id yet (not
    inside a caller's transaction that wrote already), and when events were recorded since."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pg_current_xact_id_if_assigned() IS NULL, "
            f"pg_sequence_last_value({_SEQUENCE_SQL})"
        )
        fresh, last_id = cursor.fetchone()
        if not fresh or last_id is None or last_id <= low:
            return None
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")  # a statement of its own
        return last_id, cursor.fetchone()[0]


def _state_advance(
    state: AuditSealState, *, safe: bool, mark: tuple[int, int] | None, last_id: int | None
) -> None:
    """After a run that sealed every event it could see: every event up to ``mark_id`` is now
    sealed if the mark was reached (PostgreSQL), up to the last one sealed on SQLite (nothing is
    in progress while the sealer holds the write lock). Then the new mark, if one was taken."""
    low, mark_id, mark_xid = state.low, state.mark_id, state.mark_xid
    if connection.vendor != "postgresql":
        low = max(low, last_id or 0)
    else:
        if safe:
            low, mark_id, mark_xid = max(low, mark_id), None, None
        if mark_id is None and mark is not None:
            mark_id, mark_xid = mark
    if (low, mark_id, mark_xid) != (state.low, state.mark_id, state.mark_xid):
        AuditSealState.objects.update_or_create(
            pk=1, defaults={"low": low, "mark_id": mark_id, "mark_xid": mark_xid}
        )


def chain_head() -> tuple[int, str] | None:
    """The seq and row_hash of the last sealed event, or None when there is none."""
    return AuditLink.objects.order_by("-seq").values_list("seq", "row_hash").first()


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
    last = chain_head()
    if last is None:
        last = (
            AuditCheckpoint.objects.order_by("-last_seq")
            .values_list("last_seq", "last_hash")
            .first()
        )
    return (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)


def chain_lock() -> None:
    """Serialise sealers (and purges) until the end of the current transaction. SQLite needs no
    lock: the project opens IMMEDIATE transactions, which take the write lock up front."""
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
