"""``record_many``: several events appended with one lock and one INSERT, each its own link of
the chain, exactly as the same ``record`` calls would make them."""

import itertools

import pytest

from apps.audit.chain import HASHED_FIELDS, compute_row_hash
from apps.audit.events import Event
from apps.audit.integrity import chain_verify
from apps.audit.models import AuditEvent
from apps.audit.services import AuditEntry, record, record_many
from apps.audit.testing import chain_rows, sealed
from apps.core.request_meta import RequestMeta


def test_record_many_appends_one_verifiable_link_per_entry_after_the_head(make_user):
    user = make_user()
    first = record(event=Event.LOGIN_SUCCEEDED, actor=user)

    rows = record_many(
        entries=[
            AuditEntry(event=Event.INBOUND_ACCEPTED, target=("gateway.inboundmessage", n),
                       meta=RequestMeta(ip="192.0.2.7"), extra={"size": n})
            for n in range(1, 4)
        ]
    )  # fmt: skip
    last = record(event=Event.LOGOUT, actor=user)
    first, *rows, last = sealed(first, *rows, last)

    assert [row.seq for row in rows] == [2, 3, 4]
    assert all(row.pk for row in rows)
    assert last.seq == 5
    stored = chain_rows()
    assert [row["target_id"] for row in stored[1:4]] == ["1", "2", "3"]
    assert [row["detail"] for row in stored[1:4]] == [{"size": 1}, {"size": 2}, {"size": 3}]
    assert stored[1]["prev_hash"] == first.row_hash
    for previous, row in itertools.pairwise(stored):
        assert row["prev_hash"] == previous["row_hash"]
        assert row["row_hash"] == compute_row_hash(
            prev_hash=row["prev_hash"], **{name: row[name] for name in HASHED_FIELDS}
        )
    assert chain_verify().ok


def test_record_many_checks_every_entry_first_and_appends_nothing_on_a_bad_one(db):
    with pytest.raises(ValueError, match="secret"):
        record_many(
            entries=[
                AuditEntry(event=Event.INBOUND_ACCEPTED, extra={"size": 1}),
                AuditEntry(event=Event.INBOUND_ACCEPTED, extra={"token": "x"}),
            ]
        )
    assert not AuditEvent.objects.exists()
    assert record_many(entries=[]) == []
    assert chain_verify().ok


def test_the_manager_still_refuses_bulk_create(db):
    from apps.audit.models import AuditEventImmutableError

    with pytest.raises(AuditEventImmutableError):
        AuditEvent.objects.bulk_create([])
