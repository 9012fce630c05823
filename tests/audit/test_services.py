import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, HASHED_FIELDS, compute_row_hash
from apps.audit.events import Event
from apps.audit.models import AuditEvent, AuditEventImmutableError, AuditLink
from apps.audit.selectors import audit_events_for_user
from apps.audit.services import record, seal
from apps.audit.testing import chain_rows, sealed
from apps.core.request_meta import RequestMeta

META = RequestMeta(ip="192.0.2.10", user_agent="Mozilla/5.0 (X11)", session_key="s3cr3t-session")


def test_record_builds_a_valid_chain(make_user):
    user = make_user()

    events = [
        record(event=Event.LOGIN_SUCCEEDED, actor=user, meta=META, extra={"factor": "password"}),
        record(event=Event.SECOND_FACTOR_SUCCEEDED, actor=user, meta=META),
        record(event=Event.LOGOUT, actor=user, extra={"nested": {"ids": [1, 2]}, "mot": "été"}),
    ]
    assert [(event.seq, event.row_hash) for event in events] == [(None, None)] * 3  # unsealed

    assert seal() == 3
    assert seal() == 0
    rows = chain_rows()
    assert [row["seq"] for row in rows] == [1, 2, 3]
    assert [row["id"] for row in rows] == [event.id for event in events]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    for previous, row in zip([None, *rows], rows, strict=False):
        if previous is not None:
            assert row["prev_hash"] == previous["row_hash"]
        assert row["row_hash"] == compute_row_hash(
            prev_hash=row["prev_hash"], **{name: row[name] for name in HASHED_FIELDS}
        )


def test_record_copies_actor_target_and_request_meta(make_user):
    staff = make_user("staff@example.org")
    user = make_user()

    event = record(event=Event.ACCOUNT_SUSPENDED, actor=staff, target=user, meta=META)

    event.refresh_from_db()
    assert event.event == Event.ACCOUNT_SUSPENDED
    assert event.actor == staff
    assert event.actor_ref == str(staff.pk)
    assert event.actor_label == "staff@example.org"
    assert (event.target_type, event.target_id) == ("accounts.user", str(user.pk))
    assert (event.ip, event.user_agent) == ("192.0.2.10", "Mozilla/5.0 (X11)")
    assert event.detail == {}
    assert event.created_at.utcoffset().total_seconds() == 0


def test_record_never_stores_the_session_key(make_user):
    record(event=Event.LOGOUT, actor=make_user(), meta=META)

    assert "s3cr3t-session" not in repr(list(AuditEvent.objects.values()))


def test_record_accepts_a_type_and_id_pair_as_target(db):
    event = record(event=Event.ACCOUNT_UPDATED, target=("mailbox.mailbox", 42))

    assert (event.target_type, event.target_id) == ("mailbox.mailbox", "42")


@pytest.mark.parametrize(
    "target", [("a" * 51, 1), ("mailbox.mailbox", "9" * 65), ("only-one",), "mailbox.mailbox:1"]
)
def test_record_refuses_a_malformed_target(db, target):
    with pytest.raises(ValueError, match="target"):
        record(event=Event.ACCOUNT_UPDATED, target=target)
    assert not AuditEvent.objects.exists()


def test_record_without_actor_keeps_the_given_label(db):
    event = record(
        event=Event.LOGIN_FAILED,
        actor=AnonymousUser(),
        actor_label="unknown@example.org",
        meta=RequestMeta(ip="2001:DB8::1"),
    )

    event.refresh_from_db()
    assert (event.actor, event.actor_ref, event.actor_label) == (None, "", "unknown@example.org")
    assert event.ip == "2001:db8::1"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::1"),
        ("not-an-ip", None),
        ("", None),
        (None, None),
    ],
)
def test_record_stores_a_canonical_address_or_none(db, given, stored):
    event = record(event=Event.LOGIN_FAILED, meta=RequestMeta(ip=given))

    event.refresh_from_db()
    assert event.ip == stored


def test_record_truncates_long_user_agents(db):
    event = record(event=Event.LOGIN_FAILED, meta=RequestMeta(user_agent="x" * 500 + "\x00"))

    assert event.user_agent == "x" * 300


def test_record_takes_event_numbers_but_not_unknown_ones(db):
    assert record(event=120).event == Event.LOGOUT
    with pytest.raises(ValueError, match="999"):
        record(event=999)


@pytest.mark.parametrize(
    "extra",
    [
        {"password": "hunter2"},
        {"new_password": "hunter2"},
        {"resetToken": "abc"},
        {"token": 123456},
        {"backup_code": "1234-5678"},
        {"codes": ["1234-5678"]},
        {"totp_secret": "JBSWY3DPEHPK3PXP"},
        {"otp": "123456"},
        {"body": "Compte rendu opératoire"},
        {"Subject": "Résultats"},
        {"old": {"password": "hunter2"}},
        {"messages": [{"id": 1, "subject": "Résultats"}]},
        {"password": None},
    ],
)
def test_record_refuses_extra_keys_named_like_secrets(db, extra):
    with pytest.raises(ValueError, match="secret"):
        record(event=Event.PASSWORD_CHANGED, extra=extra)
    assert not AuditEvent.objects.exists()


def test_record_accepts_boolean_flags_and_ordinary_keys(db):
    extra = {
        "backup_codes_made": True,
        "provisioned_totp": False,
        "status_id": 3,
        "fields": ["password", "email"],
        "device": "otp_totp.totpdevice/3",
    }

    assert record(event=Event.ACCOUNT_CREATED, extra=extra).detail == extra


@pytest.mark.parametrize(
    "extra",
    [
        {"ratio": 0.5},
        {"ids": {1, 2}},
        {1: "one"},
        {"when": object()},
        {"name": "nul\x00byte"},
        ["not", "a", "dict"],
    ],
)
def test_record_refuses_extra_that_cannot_be_stored_and_hashed_alike(db, extra):
    with pytest.raises(ValueError, match="Audit extra"):
        record(event=Event.ACCOUNT_UPDATED, extra=extra)


def test_record_stores_tuples_as_lists_so_the_hash_matches_what_is_read_back(db):
    record(event=Event.ACCOUNT_UPDATED, extra={"ids": (1, 2), "big": 2**70})
    seal()

    (row,) = chain_rows()
    assert row["detail"] == {"ids": [1, 2], "big": 2**70}
    assert row["row_hash"] == compute_row_hash(
        prev_hash=row["prev_hash"], **{name: row[name] for name in HASHED_FIELDS}
    )


def test_deleting_the_actor_keeps_the_event_and_its_label(make_user):
    user = make_user()
    user_pk = user.pk
    record(event=Event.LOGIN_SUCCEEDED, actor=user, meta=META)
    seal()

    user.delete()

    event = AuditEvent.objects.get()
    assert event.actor_id is None
    assert (event.actor_ref, event.actor_label) == (str(user_pk), "claire.morel@example.org")
    (row,) = chain_rows()
    assert row["row_hash"] == compute_row_hash(
        prev_hash=row["prev_hash"], **{name: row[name] for name in HASHED_FIELDS}
    )


def test_audit_events_cannot_be_changed_or_deleted_through_the_orm(db):
    event = record(event=Event.LOGOUT)
    event.actor_label = "someone.else@example.org"

    with pytest.raises(AuditEventImmutableError):
        event.save()
    with pytest.raises(AuditEventImmutableError):
        event.delete()
    with pytest.raises(AuditEventImmutableError):
        AuditEvent.objects.filter(pk=event.pk).update(actor_label="x")
    with pytest.raises(AuditEventImmutableError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.values_list("actor_label", flat=True).get() == ""


def test_audit_events_are_only_written_by_record(db):
    with pytest.raises(AuditEventImmutableError, match="record"):
        AuditEvent.objects.create(event=Event.LOGOUT, created_at=timezone.now())
    with pytest.raises(AuditEventImmutableError):
        AuditEvent.objects.bulk_create([AuditEvent(event=Event.LOGOUT, created_at=timezone.now())])
    stored = record(event=Event.LOGOUT)
    copy = AuditEvent(**{f.attname: getattr(stored, f.attname) for f in AuditEvent._meta.fields})
    with pytest.raises(AuditEventImmutableError):
        copy.save(force_update=True)
    assert AuditEvent.objects.count() == 1


def test_audit_events_for_user_lists_their_own_events_newest_first(
    make_user, django_assert_num_queries
):
    claire, other = make_user(), make_user("other@example.org")
    first = record(event=Event.LOGIN_SUCCEEDED, actor=claire)
    record(event=Event.LOGIN_SUCCEEDED, actor=other)
    second = record(event=Event.PASSWORD_CHANGED, actor=claire)
    third = record(event=Event.LOGOUT, actor=claire)

    with django_assert_num_queries(1):
        events = list(audit_events_for_user(user=claire, limit=2))

    assert events == [third, second]
    assert list(audit_events_for_user(user=claire)) == [third, second, first]


def test_record_is_rolled_back_with_the_callers_transaction(db):
    def audited_change_that_fails():
        with transaction.atomic():
            record(event=Event.LOGOUT)
            raise RuntimeError("the audited change failed")

    with pytest.raises(RuntimeError):
        audited_change_that_fails()

    assert not AuditEvent.objects.exists()
    assert sealed(record(event=Event.LOGOUT)).seq == 1


def test_sealing_follows_commits_and_a_late_commit_takes_the_next_place(db):
    """The chain order is the sealing order: an event recorded earlier but committed later
    (here: sealed later) goes after the ones sealed before it, with no gap."""
    early = record(event=Event.LOGIN_SUCCEEDED, actor_label="early")
    late = record(event=Event.LOGOUT, actor_label="late")
    assert seal(batch_size=1) == 2  # several short transactions, one row each
    early, late = sealed(early, late)
    assert (early.seq, late.seq) == (1, 2)
    assert late.prev_hash == early.row_hash
    third = sealed(record(event=Event.LOGOUT))
    assert (third.seq, third.prev_hash) == (3, late.row_hash)


def test_a_sealed_row_is_never_sealed_again(db):
    from django.db import IntegrityError, connection

    event = sealed(record(event=Event.LOGOUT))
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditlink (seq, event_id, prev_hash, row_hash) "
            "VALUES (7, %s, %s, %s)",
            [event.pk, event.row_hash, "f" * 64],
        )
    assert seal() == 0
    assert AuditEvent.objects.get().seq == 1


def test_audit_links_are_only_written_by_seal(db):
    event = sealed(record(event=Event.LOGOUT))
    link, row_hash = AuditLink.objects.get(), event.row_hash
    with pytest.raises(AuditEventImmutableError, match="seal"):
        AuditLink.objects.create(seq=2, event=event, prev_hash=link.row_hash, row_hash="f" * 64)
    with pytest.raises(AuditEventImmutableError):
        AuditLink.objects.bulk_create([AuditLink(seq=2, event=event)])
    link.row_hash = "f" * 64
    with pytest.raises(AuditEventImmutableError):
        link.save()
    with pytest.raises(AuditEventImmutableError):
        link.delete()
    with pytest.raises(AuditEventImmutableError):
        AuditLink.objects.update(row_hash="f" * 64)
    with pytest.raises(AuditEventImmutableError):
        AuditLink.objects.all().delete()
    assert AuditLink.objects.values_list("seq", "row_hash").get() == (1, row_hash)
