"""A message's "Traçabilité": every step in chain order, the exports (JSON verifiable against the
chain, PDF), access control, and the audit rows of reading and exporting."""

import html
import io
import json
from pathlib import Path

import pypdfium2
import pytest

from apps.audit.events import Event
from apps.audit.exports import export_verify
from apps.audit.models import AuditEvent
from apps.delivery.models import DeliveryStatus, OutboundDelivery
from apps.delivery.receipts import receipt_absorb
from apps.ingestion.parse import parse_message
from apps.mailbox.models import FolderKind, Mailbox, MailboxKind, MailboxMembership, Message
from apps.mailbox.services import Address, message_send, messages_delete, messages_move
from tests.conftest import DOMAIN, client_for, make_user
from tests.conftest import mailbox_of as box
from tests.delivery import conftest as delivery_fixtures
from tests.delivery.conftest import PEER_DOMAIN, Behaviour

pytestmark = pytest.mark.django_db

# The delivery tests' real SMTP peer (aiosmtpd, STARTTLS, test PKI) and trust list.
start_peer = delivery_fixtures.start_peer
trusted_peer = delivery_fixtures.trusted_peer

FIXTURES = Path(__file__).parent.parent / "ingestion" / "fixtures"
DOCTOR = f"jacques.bideault@{PEER_DOMAIN}"


def trace_url(message: Message, suffix: str = "") -> str:
    return f"/messagerie/message/{message.pk}/tracabilite/{suffix}"


def mdn_about(message: Message) -> bytes:
    raw = (FIXTURES / "mdn.eml").read_bytes()
    raw = raw.replace(b"orig-43@chirurgien-dentiste.mssante.fr", message.message_id.encode())
    raw = raw.replace(b"orig-42@chirurgien-dentiste.mssante.fr", message.message_id.encode())
    return raw.replace(b"jacques.bideault@medecin.mssante.fr", DOCTOR.encode())


@pytest.fixture
def sent_and_read(alice, start_peer, django_capture_on_commit_callbacks):
    """Alice writes to a doctor at another operator: the peer first answers 450 (deferred),
    then takes it on the retry; the doctor reads it and their MDN comes back."""
    from apps.delivery import services as delivery_services

    peer = start_peer(Behaviour(rcpt={DOCTOR: "450 4.2.1 Mailbox busy, try later"}))
    with django_capture_on_commit_callbacks(execute=True):
        sent = message_send(
            user=alice, mailbox=box(alice), to=[Address("", DOCTOR)],
            subject="Compte rendu opératoire", text="Bonjour.\n", read_receipt=True,
        )  # fmt: skip
    row = OutboundDelivery.objects.get(message=sent)
    assert row.status == DeliveryStatus.DEFERRED
    peer.handler.behaviour.rcpt = {}
    delivery_services.deliveries_run(now=row.next_attempt_at.replace(microsecond=0) + _one_minute())
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED, row.reason
    assert len(peer.received) == 1
    raw = mdn_about(sent)
    assert receipt_absorb(mailbox=box(alice), parsed=parse_message(raw), raw=raw) is True
    row.refresh_from_db()
    assert row.status == DeliveryStatus.READ
    return sent


def _one_minute():
    from datetime import timedelta

    return timedelta(minutes=1)


def test_the_trace_of_a_message_sent_to_another_operator_shows_every_step_in_order(
    alice, sent_and_read
):
    response = client_for(alice).get(trace_url(sent_and_read))
    assert response.status_code == 200
    steps = response.context["steps"]
    assert [step.event for step in steps] == [
        Event.DELIVERY_QUEUED,
        Event.MESSAGE_SENT,
        Event.DELIVERY_DEFERRED,
        Event.DELIVERY_DELIVERED,
        Event.DELIVERY_READ,
    ]
    seqs = [step.seq for step in steps]
    assert seqs == sorted(seqs)
    sent_step, deferred, delivered, read = steps[1], steps[2], steps[3], steps[4]
    assert "Alice Martin" in sent_step.title
    assert f"depuis la boîte {box(alice).address}" in sent_step.details
    assert any("450 4.2.1" in d for d in deferred.details)
    assert "tentative n° 1" in deferred.details
    assert any("250" in d for d in delivered.details)
    assert "tentative n° 2" in delivered.details
    assert DOCTOR in read.title
    [recipient] = response.context["recipients"]
    assert (recipient.recipient, recipient.route, recipient.status) == (DOCTOR, "operator", "read")
    assert recipient.attempts == 2
    page = html.unescape(response.content.decode())
    assert "autre opérateur de l'espace de confiance" in page
    assert "accusé de lecture reçu" in page
    assert "DELIVERY_" not in page  # never raw enum names


def test_viewing_the_trace_is_audited_with_the_reader_as_actor(alice, sent_and_read):
    client_for(alice).get(trace_url(sent_and_read))
    row = AuditEvent.objects.get(event=Event.MESSAGE_TRACE_VIEWED)
    assert (row.actor_id, row.target_type, row.target_id) == (
        alice.pk,
        "mailbox.message",
        str(sent_and_read.pk),
    )


def test_the_json_export_carries_the_rows_as_hashed_and_verifies_against_the_chain(
    alice, sent_and_read
):
    response = client_for(alice).get(trace_url(sent_and_read, "export.json"))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    events = [row["event"] for row in data["rows"]]
    assert events[:5] == [620, 500, 622, 621, 624]
    # The export is itself audited, and carries its own row.
    assert events[-1] == Event.MESSAGE_TRACE_EXPORTED
    exported = AuditEvent.objects.get(event=Event.MESSAGE_TRACE_EXPORTED)
    assert exported.actor_id == alice.pk
    assert exported.detail == {"mailbox": box(alice).pk, "format": "json"}
    for row in data["rows"]:
        stored = AuditEvent.objects.get(link__seq=row["seq"])
        assert (row["row_hash"], row["prev_hash"]) == (stored.row_hash, stored.prev_hash)
    assert data["chain"]["hashed_fields"][0] == "seq"
    check = export_verify(response.content)
    assert check.ok, check.problems
    assert check.checked == len(data["rows"])


def test_a_third_party_recomputes_the_hashes_from_the_description_alone(alice, sent_and_read):
    """What an expert would do with the file only: sha256(prev_hash + canonical JSON)."""
    import hashlib

    data = json.loads(client_for(alice).get(trace_url(sent_and_read, "export.json")).content)
    for row in data["rows"]:
        payload = json.dumps(
            {name: row[name] for name in data["chain"]["hashed_fields"]},
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        )  # fmt: skip
        digest = hashlib.sha256((row["prev_hash"] + payload).encode()).hexdigest()
        assert digest == row["row_hash"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_at", "2020-01-01T00:00:00.000000+00:00"),
        ("actor_label", "quelqu.un.d.autre@test.mssante.fr"),
        ("detail", {"smtp_reply": 550}),
    ],
)
def test_an_altered_export_fails_verification(alice, sent_and_read, field, value):
    data = json.loads(client_for(alice).get(trace_url(sent_and_read, "export.json")).content)
    data["rows"][2][field] = value
    check = export_verify(data)
    assert not check.ok
    assert f"Ligne {data['rows'][2]['seq']}" in check.problems[0]


def test_an_export_whose_hashes_were_recomputed_still_fails_against_the_chain(alice, sent_and_read):
    """A forger who recomputes the row's hash after editing it is caught by the database."""
    from datetime import datetime

    from apps.audit.chain import HASHED_FIELDS, compute_row_hash

    data = json.loads(client_for(alice).get(trace_url(sent_and_read, "export.json")).content)
    row = data["rows"][3]
    row["created_at"] = "2020-01-01T00:00:00.000000+00:00"
    values = {name: row[name] for name in HASHED_FIELDS}
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    row["row_hash"] = compute_row_hash(prev_hash=row["prev_hash"], **values)
    check = export_verify(data)
    assert not check.ok
    assert "différente de celle du journal" in check.problems[0]


def test_an_export_of_a_tampered_chain_fails(alice, sent_and_read, tamper):
    content = client_for(alice).get(trace_url(sent_and_read, "export.json")).content
    seq = json.loads(content)["rows"][1]["seq"]
    tamper(
        "UPDATE audit_auditevent SET actor_label = %s "
        "WHERE id = (SELECT event_id FROM audit_auditlink WHERE seq = %s)",
        ["x@y.fr", seq],
    )
    check = export_verify(content)
    assert not check.ok
    assert "altéré" in check.problems[0]


def test_garbage_is_not_an_export():
    assert not export_verify(b"not json").ok
    assert not export_verify({"format": "other"}).ok
    assert not export_verify({"format": "mssweb-audit-export/1", "rows": []}).ok


def test_the_pdf_export_lists_the_steps_and_is_audited(alice, sent_and_read):
    response = client_for(alice).get(trace_url(sent_and_read, "export.pdf"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    document = pypdfium2.PdfDocument(io.BytesIO(response.content))
    text = "".join(page.get_textpage().get_text_range() for page in document)
    assert "Traçabilité d'un message" in text
    assert DOCTOR in text
    assert "450 4.2.1" in text
    assert "Lu par" in text
    assert AuditEvent.objects.filter(
        event=Event.MESSAGE_TRACE_EXPORTED, actor=alice, detail__format="pdf"
    ).exists()


def test_the_pdf_falls_back_to_core_fonts_with_french_accents(alice, sent_and_read, monkeypatch):
    from apps.audit import exports, selectors

    monkeypatch.setattr(exports, "_FONT_CANDIDATES", ())
    trace = selectors.message_trace(user=alice, message_id=sent_and_read.pk)
    pdf = exports.trace_pdf(trace=trace, exported_by="Zoë Dvořák “test” → ok")
    text = "".join(
        page.get_textpage().get_text_range() for page in pypdfium2.PdfDocument(io.BytesIO(pdf))
    )
    assert "Traçabilité d'un message" in text
    assert 'Zoë Dvorák "test" - ok' in text


def test_another_user_cannot_see_or_export_a_trace(alice, bob, sent_and_read):
    intruder = client_for(bob)
    for suffix in ("", "export.json", "export.pdf"):
        assert intruder.get(trace_url(sent_and_read, suffix)).status_code == 404
    assert not AuditEvent.objects.filter(
        event__in=[Event.MESSAGE_TRACE_VIEWED, Event.MESSAGE_TRACE_EXPORTED]
    ).exists()


def test_a_local_message_shows_each_copy_the_reader_may_see_and_who_acted_in_a_shared_box(
    alice, bob
):
    """A shared mailbox: Carol sends, Bob (another member) moves then deletes for good;
    the recipient's copy is not the sender's business (only its delivery and read receipt)."""
    carol = make_user(first_name="Carol", last_name="Petit")
    shared = Mailbox.objects.create(
        address=f"secretariat@{DOMAIN}", kind=MailboxKind.ORGANISATIONAL,
        domain=box(alice).domain, display_name="Secrétariat",
    )  # fmt: skip
    MailboxMembership.objects.create(mailbox=shared, user=carol)
    MailboxMembership.objects.create(mailbox=shared, user=bob)
    sent = message_send(
        user=carol, mailbox=shared, to=[Address("", alice.email)], subject="Résultats",
        text="Bonjour.\n",
    )  # fmt: skip
    received = Message.objects.get(mailbox=box(alice))
    alice_client = client_for(alice)
    alice_client.get(f"/messagerie/message/{received.pk}/")  # read by Alice

    from apps.mailbox.services import folders_ensure

    archive = folders_ensure(mailbox=shared)[FolderKind.ARCHIVE]
    messages_move(user=bob, messages=[sent], target=archive)
    sent.refresh_from_db()

    steps = client_for(carol).get(trace_url(sent)).context["steps"]
    titles = [step.title for step in steps]
    assert titles[0] == "Envoyé par Carol Petit"
    assert "Déplacé par Bob Durand vers Archives" in titles
    assert not any("Alice" in title for title in titles)  # her copy is hers
    recipients = client_for(carol).get(trace_url(sent)).context["recipients"]
    assert [(r.recipient, r.route) for r in recipients] == [(alice.email, "local")]

    # Alice's trace of her copy: delivered to her box, read by her.
    alice_steps = alice_client.get(trace_url(received)).context["steps"]
    assert [s.event for s in alice_steps] == [Event.MESSAGE_DELIVERED_LOCALLY, Event.MESSAGE_READ]
    assert alice_steps[1].title == "Lu par Alice Martin"

    # Deleted for good by Bob: the trace of Carol's other copies cannot be opened any more, but
    # the deletion stays on record with Bob as actor.
    messages_delete(user=bob, messages=[Message.objects.get(pk=sent.pk)])
    trash_copy = Message.objects.get(pk=sent.pk)
    messages_delete(user=bob, messages=[trash_copy])
    assert client_for(carol).get(trace_url(sent)).status_code == 404
    deleted = AuditEvent.objects.get(event=Event.MESSAGE_DELETED)
    assert (deleted.actor_id, deleted.target_id) == (bob.pk, str(sent.pk))


def test_the_message_page_links_to_its_trace(alice, bob):
    sent = message_send(user=alice, mailbox=box(alice), to=[Address("", bob.email)],
                        subject="Lien", text="x\n")  # fmt: skip
    page = client_for(alice).get(f"/messagerie/message/{sent.pk}/").content.decode()
    assert trace_url(sent) in page


def test_the_trace_page_runs_a_constant_number_of_queries(
    alice, sent_and_read, django_assert_max_num_queries
):
    client = client_for(alice)
    client.get(trace_url(sent_and_read))
    with django_assert_max_num_queries(30):
        client.get(trace_url(sent_and_read))
