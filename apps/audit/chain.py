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
