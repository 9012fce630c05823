"""The pure hashing functions, without a database."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from apps.audit.chain import (
    BROKEN_LINK,
    GENESIS_HASH,
    HASH_MISMATCH,
    HASHED_FIELDS,
    MISSING_ROWS,
    ChainBreak,
    canonical_ip,
    compute_row_hash,
    verify_rows,
)

FIELDS = {
    "seq": 1,
    "created_at": datetime(2025, 3, 1, 8, 30, 0, 123456, tzinfo=UTC),
    "event": 100,
    "actor_ref": "7",
    "actor_label": "claire.morel@example.org",
    "ip": "192.0.2.1",
    "user_agent": "Firefox",
    "target_type": "accounts.user",
    "target_id": "7",
    "detail": {"factor": "password", "ids": [1, 2]},
}


def make_chain(count: int) -> list[dict]:
    rows, prev_hash = [], GENESIS_HASH
    for seq in range(1, count + 1):
        fields = {**FIELDS, "seq": seq, "target_id": str(seq)}
        row_hash = compute_row_hash(prev_hash=prev_hash, **fields)
        rows.append({"id": seq + 10, "prev_hash": prev_hash, "row_hash": row_hash, **fields})
        prev_hash = row_hash
    return rows


def test_row_hash_is_sha256_hex_and_deterministic():
    row_hash = compute_row_hash(prev_hash=GENESIS_HASH, **FIELDS)

    assert len(row_hash) == 64
    assert int(row_hash, 16) >= 0
    assert row_hash == compute_row_hash(prev_hash=GENESIS_HASH, **dict(reversed(FIELDS.items())))


def test_row_hash_ignores_detail_key_order_and_timezone_of_the_same_instant():
    paris = timezone(timedelta(hours=1))
    same = {
        **FIELDS,
        "created_at": FIELDS["created_at"].astimezone(paris),
        "detail": {"ids": [1, 2], "factor": "password"},
    }

    assert compute_row_hash(prev_hash=GENESIS_HASH, **same) == compute_row_hash(
        prev_hash=GENESIS_HASH, **FIELDS
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("seq", 2),
        ("created_at", FIELDS["created_at"] + timedelta(microseconds=1)),
        ("event", 101),
        ("actor_ref", "8"),
        ("actor_label", "claire.morel@example.org "),
        ("ip", "192.0.2.2"),
        ("ip", None),
        ("user_agent", "Chrome"),
        ("target_type", "accounts.domain"),
        ("target_id", "8"),
        ("detail", {"factor": "password", "ids": [2, 1]}),
    ],
)
def test_row_hash_covers_every_field(name, value):
    assert compute_row_hash(prev_hash=GENESIS_HASH, **{**FIELDS, name: value}) != compute_row_hash(
        prev_hash=GENESIS_HASH, **FIELDS
    )


def test_row_hash_covers_prev_hash():
    assert compute_row_hash(prev_hash="1" * 64, **FIELDS) != compute_row_hash(
        prev_hash=GENESIS_HASH, **FIELDS
    )


def test_hashed_fields_are_the_hash_function_arguments():
    # verify_rows passes rows to compute_row_hash by these names
    compute_row_hash(prev_hash=GENESIS_HASH, **{name: FIELDS[name] for name in HASHED_FIELDS})


def test_naive_created_at_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_row_hash(prev_hash=GENESIS_HASH, **{**FIELDS, "created_at": datetime(2025, 3, 1)})  # noqa: DTZ001


@pytest.mark.parametrize(
    ("stored", "canonical"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("::0.1.0.2", "::1:2"),  # how PostgreSQL prints ::1:2
        ("::ffff:192.0.2.1", "192.0.2.1"),
        (None, None),
        ("not an address", "not an address"),
    ],
)
def test_canonical_ip_gives_one_spelling_per_address(stored, canonical):
    assert canonical_ip(stored) == canonical


def test_verify_rows_accepts_a_good_chain():
    rows = make_chain(3)

    report = verify_rows(rows)

    assert report.ok
    assert report.verified == 3
    assert report.head == rows[-1]["row_hash"]


def test_verify_rows_of_nothing_reports_the_starting_point():
    assert verify_rows([]).head == GENESIS_HASH
    assert verify_rows([], prev_hash="a" * 64, next_seq=5).head == "a" * 64


def test_verify_rows_reports_an_edited_row():
    rows = make_chain(3)
    rows[1]["detail"] = {"factor": "code"}

    report = verify_rows(rows)

    assert report.broken == ChainBreak(seq=2, id=12, reason=HASH_MISMATCH)
    assert report.verified == 1


def test_verify_rows_reports_a_rewritten_row_at_the_next_link():
    rows = make_chain(3)
    rows[1]["actor_label"] = "someone.else@example.org"
    rows[1]["row_hash"] = compute_row_hash(
        prev_hash=rows[1]["prev_hash"], **{name: rows[1][name] for name in HASHED_FIELDS}
    )

    assert verify_rows(rows).broken == ChainBreak(seq=3, id=13, reason=BROKEN_LINK)


def test_verify_rows_reports_missing_rows():
    rows = make_chain(4)

    assert verify_rows(rows[:1] + rows[2:]).broken == ChainBreak(3, 13, MISSING_ROWS)
    assert verify_rows(rows[1:]).broken == ChainBreak(2, 12, MISSING_ROWS)


def test_verify_rows_reports_a_first_row_not_linked_to_genesis():
    rows = make_chain(3)

    assert verify_rows(rows[1:], next_seq=2).broken == ChainBreak(2, 12, BROKEN_LINK)
    assert verify_rows(rows[1:], prev_hash=rows[0]["row_hash"], next_seq=2).ok
