"""The audit hash chain, as pure functions: no database, no Django.

Each audit row carries ``row_hash = sha256(prev_hash + canonical(row))``, where ``prev_hash`` is
the previous row's ``row_hash`` (64 zeros for the first row) and ``canonical(row)`` is a JSON
serialisation with sorted keys of every recorded field, including ``seq``, the row's position in
the chain. Editing, deleting or reordering rows therefore breaks the chain at the first row
touched; ``verify_rows`` finds it. Rewriting the chain from some row to the head is only
detectable against a head hash kept elsewhere: ``manage.py audit_verify`` prints it.
"""

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

# The row fields covered by the hash, besides prev_hash. Changing this list, the serialisation or
# the digest invalidates every stored chain: add a chain version first.
HASHED_FIELDS = (
    "seq",
    "created_at",
    "event",
    "actor_ref",
    "actor_label",
    "ip",
    "user_agent",
    "target_type",
    "target_id",
    "detail",
)

HASH_MISMATCH = "hash mismatch"
BROKEN_LINK = "broken link"
MISSING_ROWS = "missing rows"


def canonical_json(value: Any) -> str:
    """The one JSON form used for hashing: sorted keys, no spaces, UTF-8 text, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def timestamp(created_at: datetime) -> str:
    """``created_at`` in UTC, ISO 8601 with microseconds (the resolution both databases keep)."""
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    return created_at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_ip(ip: str | None) -> str | None:
    """One spelling per address: databases and Python versions print some IPv6 forms
    differently (PostgreSQL writes ``::0.1.0.2`` for ``::1:2``); IPv4-mapped becomes IPv4."""
    if ip is None:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # not an address: hashed as stored, so any later change still shows
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def compute_row_hash(
    *,
    prev_hash: str,
    seq: int,
    created_at: datetime,
    event: int,
    actor_ref: str,
    actor_label: str,
    ip: str | None,
    user_agent: str,
    target_type: str,
    target_id: str,
    detail: Mapping[str, Any],
) -> str:
    payload = canonical_json(
        {
            "seq": seq,
            "created_at": timestamp(created_at),
            "event": int(event),
            "actor_ref": actor_ref,
            "actor_label": actor_label,
            "ip": canonical_ip(ip),
            "user_agent": user_agent,
            "target_type": target_type,
            "target_id": target_id,
            "detail": detail,
        }
    )
    return hashlib.sha256((prev_hash + payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    id: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    verified: int
    head: str
    broken: ChainBreak | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify_rows(
    rows: Iterable[Mapping[str, Any]], *, prev_hash: str = GENESIS_HASH, next_seq: int = 1
) -> ChainReport:
    """Check rows given in ``seq`` order, each a mapping with ``id``, ``prev_hash``, ``row_hash``
    and every name of ``HASHED_FIELDS``; stop at the first broken row.

    ``prev_hash`` and ``next_seq`` describe the row before the first one given (genesis by
    default). A row is broken when rows before it are missing (its ``seq`` is not the next one),
    when its own content no longer matches its hash, or when it does not link to the row before.
    """
    verified = 0
    for row in rows:
        if row["seq"] != next_seq:
            reason = MISSING_ROWS
        elif (
            compute_row_hash(
                prev_hash=row["prev_hash"], **{name: row[name] for name in HASHED_FIELDS}
            )
            != row["row_hash"]
        ):
            reason = HASH_MISMATCH
        elif row["prev_hash"] != prev_hash:
            reason = BROKEN_LINK
        else:
            verified += 1
            prev_hash = row["row_hash"]
            next_seq += 1
            continue
        return ChainReport(verified, prev_hash, ChainBreak(row["seq"], row["id"], reason))
    return ChainReport(verified, prev_hash)


# --- Retention checkpoints --------------------------------------------------------------------

CHECKPOINT_FIELDS = ("created_at", "first_seq", "last_seq", "count", "last_hash")


def compute_checkpoint_hash(
    *,
    prev_checkpoint_hash: str,
    created_at: datetime,
    first_seq: int,
    last_seq: int,
    count: int,
    last_hash: str,
) -> str:
    """The hash of a retention checkpoint, chained to the previous checkpoint's (genesis for the
    first): ``sha256(prev + canonical({...}))`` like a row, with a ``kind`` so that a checkpoint
    can never pass for an audit row."""
    payload = canonical_json(
        {
            "kind": "checkpoint",
            "created_at": timestamp(created_at),
            "first_seq": first_seq,
            "last_seq": last_seq,
            "count": count,
            "last_hash": last_hash,
        }
    )
    return hashlib.sha256((prev_checkpoint_hash + payload).encode("utf-8")).hexdigest()


def verify_checkpoints(checkpoints: Iterable[Mapping[str, Any]]) -> str | None:
    """Check checkpoints given in ``last_seq`` order: each covers the rows right after the
    previous one (the first starts at seq 1), matches its own hash and links to the previous one.
    Returns None, or why the first bad one is bad."""
    prev_hash, next_seq = GENESIS_HASH, 1
    for checkpoint in checkpoints:
        where = f"checkpoint {checkpoint['first_seq']}-{checkpoint['last_seq']}"
        if checkpoint["first_seq"] != next_seq:
            return f"{where}: does not follow the previous checkpoint"
        if checkpoint["last_seq"] - checkpoint["first_seq"] + 1 != checkpoint["count"]:
            return f"{where}: count does not match its range"
        expected = compute_checkpoint_hash(
            prev_checkpoint_hash=checkpoint["prev_checkpoint_hash"],
            **{name: checkpoint[name] for name in CHECKPOINT_FIELDS},
        )
        if expected != checkpoint["checkpoint_hash"]:
            return f"{where}: {HASH_MISMATCH}"
        if checkpoint["prev_checkpoint_hash"] != prev_hash:
            return f"{where}: {BROKEN_LINK}"
        prev_hash, next_seq = checkpoint["checkpoint_hash"], checkpoint["last_seq"] + 1
    return None
