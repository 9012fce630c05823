"""Writing to patients through Mon espace santé: INS validation, the patient's address and
headers, one patient per message, the 25 MB limit, delivery to a real TLS peer standing for
the patients' operator, and the patient badge in lists, conversations and search."""

from email import message_from_bytes, policy

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.attachments.services import blob_bytes
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.delivery.models import DeliveryStatus, OutboundDelivery
from apps.mailbox import patients
from apps.mailbox.models import FolderKind, Message, PatientRecipient
from apps.mailbox.patients import InsInvalid, ins_from_address, ins_validate, patient_address
from apps.mailbox.services import message_deliver_raw
from apps.trustlist.dn import dn_canonical
from apps.trustlist.models import TrustedEntry, TrustList
from apps.trustlist.routing import Route
from tests.conftest import client_for, mailbox_of
from tests.delivery.conftest import start_peer, trusted_peer  # noqa: F401 - fixtures
from tests.pki import PEER_DN

pytestmark = pytest.mark.django_db

COMPOSE = "/messagerie/ecrire/"
INS = "162018885045327"  # the INS of the XDM sample (key 27)
ADDRESS = f"{INS}@patient.mssante.fr"
OTHER_INS = "275037512345693"


# --- INS validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (INS, INS),
        ("1 62 01 88 850 453 27", INS),  # spaces, as printed on a card
        ("1.62.01-88.850.453.27", INS),
        (OTHER_INS, OTHER_INS),
        ("185052A00412356", "185052A00412356"),  # born in Corse-du-Sud: 2A read as 19
        ("185052a00412356", "185052A00412356"),
        ("290072B01203457", "290072B01203457"),  # Haute-Corse: 2B read as 18
        ("799109912345671", "799109912345671"),  # a provisional number (NIA shape)
    ],
)
def test_valid_ins_are_accepted_and_normalised(value, expected):
    assert ins_validate(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Indiquez l'INS"),
        ("162018885045328", "La clé de l'INS"),  # bad key
        ("162018885045300", "La clé de l'INS"),
        ("185052A00412357", "La clé de l'INS"),
        ("16201888504532", "15 caractères (14 saisis)"),  # too short
        ("1620188850453270", "15 caractères (16 saisis)"),  # too long
        ("1620188850453A7", "que des chiffres"),  # letters
        ("16201ZZ85045327", "que des chiffres"),
        ("1620188850453²7", "que des chiffres"),  # a non-ASCII digit
        ("562018885045327", "commencer par 1, 2, 3, 4, 7 ou 8"),
        ("062018885045327", "commencer par 1, 2, 3, 4, 7 ou 8"),
    ],
)
def test_invalid_ins_are_refused_with_a_french_reason(value, message):
    with pytest.raises(InsInvalid) as caught:
        ins_validate(value)
    assert message in caught.value.message


def test_the_patient_address_uses_the_configured_domain(settings):
    assert patient_address(INS) == ADDRESS
    settings.MSSANTE_PATIENT_DOMAIN = "patient.mssante.test"
    assert patient_address(" 1 62 01 88 850 453 27 ") == f"{INS}@patient.mssante.test"
    assert ins_from_address(f"{INS}@patient.mssante.test") == INS
    assert ins_from_address(ADDRESS) == ""  # another domain now
    assert ins_from_address("162018885045328@patient.mssante.test") == ""  # bad key


def test_the_default_size_limit_for_patients_is_25_mb():
    assert django_settings.MSSANTE_PATIENT_MAX_SIZE == 25_000_000


def test_patient_headers_follow_the_mssante_rules():
    assert patients.patient_headers(no_reply=False) == {"X-MSS-INS": "O"}
    assert patients.patient_headers(no_reply=True) == {"X-MSS-INS": "O", "X-MSS-MES": "FIN"}


# --- Compose ----------------------------------------------------------------------------------


def patient_post(client, user, **extra):
    data = {
        "mailbox": mailbox_of(user).pk, "to": "", "subject": "Votre ordonnance",
        "text": "Bonjour,\nvoici votre ordonnance.\n", "patient_ins": INS,
        "patient_family_name": "Dupont", "patient_given_names": "Marie Louise",
        "patient_birth_date": "1962-01-15", **extra,
    }  # fmt: skip
    return client.post(COMPOSE, data)


def headers_of(message: Message):
    return message_from_bytes(blob_bytes(message.raw), policy=policy.default)


def test_a_message_to_a_patient_has_the_patient_address_and_headers(alice):
    client = client_for(alice)
    response = patient_post(client, alice, patient_no_reply="on")
    assert response.status_code == 302, response.content.decode()[:2000]
    sent = Message.objects.get(mailbox=mailbox_of(alice))
    mime = headers_of(sent)
    [to] = mime["To"].addresses
    assert to.addr_spec == ADDRESS
    assert to.display_name == "Marie Louise DUPONT"
    assert mime["X-MSS-MES"] == "FIN"
    assert mime["X-MSS-INS"] == "O"
    assert mime["Disposition-Notification-To"] == mailbox_of(alice).address
    assert sent.read_receipt_to == mailbox_of(alice).address
    assert b"\r\n" in blob_bytes(sent.raw)
    assert b"\n\n" not in blob_bytes(sent.raw)
    patient = PatientRecipient.objects.get(message=sent)
    assert (patient.ins, patient.family_name, patient.given_names) == (
        INS, "Dupont", "Marie Louise",
    )  # fmt: skip
    assert patient.birth_date.isoformat() == "1962-01-15"
    assert patient.no_reply
    row = OutboundDelivery.objects.get(message=sent)
    assert (row.recipient, row.route, row.dsn_requested) == (ADDRESS, Route.PATIENT, True)
    event = AuditEvent.objects.get(event=Event.PATIENT_MESSAGE_SENT)
    assert event.actor_id == alice.pk
    audit_text = str(list(AuditEvent.objects.values_list("detail", flat=True)))
    assert INS not in audit_text
    assert "Dupont" not in audit_text


def test_without_the_option_the_patient_may_reply_and_a_receipt_is_still_asked(alice):
    response = patient_post(client_for(alice), alice, read_receipt="")
    assert response.status_code == 302
    mime = headers_of(Message.objects.get(mailbox=mailbox_of(alice)))
    assert mime["X-MSS-MES"] is None
    assert mime["Disposition-Notification-To"] == mailbox_of(alice).address


def test_a_colleague_may_be_in_copy_of_a_patient_message(alice, bob):
    response = patient_post(client_for(alice), alice, cc=bob.email)
    assert response.status_code == 302
    assert Message.objects.get(mailbox=mailbox_of(bob)).folder.kind == FolderKind.INBOX
    assert not PatientRecipient.objects.filter(message__mailbox=mailbox_of(bob)).exists()


@pytest.mark.parametrize("field", ["to", "cc", "bcc"])
def test_a_patient_address_next_to_the_patient_block_is_refused(alice, field):
    response = patient_post(client_for(alice), alice, **{field: f"{OTHER_INS}@patient.mssante.fr"})
    assert response.status_code == 200
    assert "Un seul patient par message" in response.content.decode()
    assert not Message.objects.exists()
    assert not OutboundDelivery.objects.exists()


def test_two_patients_typed_in_the_recipients_are_refused(alice):
    client = client_for(alice)
    response = client.post(
        COMPOSE,
        {"mailbox": mailbox_of(alice).pk, "subject": "Résultats", "text": "Bonjour",
         "to": f"{INS}@patient.mssante.fr, {OTHER_INS}@patient.mssante.fr"},
    )  # fmt: skip
    assert "Un seul patient par message" in response.content.decode()
    assert not Message.objects.exists()


def test_a_patient_address_with_a_wrong_ins_is_refused(alice):
    client = client_for(alice)
    response = client.post(
        COMPOSE,
        {"mailbox": mailbox_of(alice).pk, "subject": "Résultats", "text": "Bonjour",
         "to": "162018885045328@patient.mssante.fr"},
    )  # fmt: skip
    assert "INS incorrect" in response.content.decode()
    assert not Message.objects.exists()


def test_a_reply_to_a_patient_is_a_patient_message_named_as_before(alice):
    client = client_for(alice)
    assert patient_post(client, alice).status_code == 302
    response = client.post(
        COMPOSE,
        {"mailbox": mailbox_of(alice).pk, "subject": "Suite", "text": "Bonjour", "to": ADDRESS},
    )
    assert response.status_code == 302
    second = Message.objects.filter(mailbox=mailbox_of(alice)).latest("pk")
    assert second.patient.family_name == "Dupont"
    assert headers_of(second)["Disposition-Notification-To"]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"patient_ins": "162018885045328"}, "La clé de l&#x27;INS"),
        ({"patient_ins": "1620188850453"}, "15 caractères (13 saisis)"),
        ({"patient_family_name": ""}, "Indiquez le nom de naissance du patient."),
        ({"patient_given_names": " "}, "Indiquez les prénoms du patient."),
        ({"patient_birth_date": ""}, "Indiquez la date de naissance du patient."),
        ({"patient_birth_date": "2999-01-01"}, "La date de naissance est dans le futur."),
    ],
)
def test_an_incomplete_patient_block_is_refused_and_kept(alice, extra, error):
    response = patient_post(client_for(alice), alice, **extra)
    assert response.status_code == 200
    page = response.content.decode()
    assert error in page
    assert 'value="Votre ordonnance"' in page  # what was typed is kept
    assert not Message.objects.exists()


def test_a_patient_message_over_the_patient_limit_is_refused(alice, settings):
    settings.MAILBOX_MAX_MESSAGE_SIZE = 50_000_000  # the operator's own limit is higher
    settings.MSSANTE_PATIENT_MAX_SIZE = 2_000_000
    big = SimpleUploadedFile("imagerie.pdf", b"%PDF-1.4\n" + b"x" * 2_100_000, "application/pdf")
    response = patient_post(client_for(alice), alice, files=[big])
    assert response.status_code == 200
    assert "Un message à un patient ne peut pas dépasser 2 Mo" in response.content.decode()
    assert not Message.objects.exists()


def test_the_patient_limit_counts_the_whole_message_as_sent(alice, settings):
    """1.6 MB of attachment is about 2.2 MB once base64-encoded: over a 2 MB limit."""
    settings.MSSANTE_PATIENT_MAX_SIZE = 2_000_000
    pdf = SimpleUploadedFile("cr.pdf", b"%PDF-1.4\n" + bytes(range(256)) * 6_250, "application/pdf")
    response = patient_post(client_for(alice), alice, files=[pdf])
    assert response.status_code == 200
    assert "ne peut pas dépasser 2 Mo" in response.content.decode()
    assert not Message.objects.exists()


def test_the_patient_limit_does_not_apply_to_professionals(alice, bob, settings):
    settings.MSSANTE_PATIENT_MAX_SIZE = 2_000_000
    big = SimpleUploadedFile("imagerie.pdf", b"%PDF-1.4\n" + b"x" * 2_100_000, "application/pdf")
    response = client_for(alice).post(
        COMPOSE,
        {"mailbox": mailbox_of(alice).pk, "to": bob.email, "subject": "Imagerie",
         "text": "Ci-joint", "files": [big]},
    )  # fmt: skip
    assert response.status_code == 302


def test_the_compose_page_has_the_patient_block(alice):
    page = client_for(alice).get(COMPOSE).content.decode()
    assert "Écrire à un patient" in page
    assert 'name="patient_ins"' in page
    assert 'name="patient_no_reply"' in page
    assert "Le patient ne peut pas répondre" in page


# --- Delivery to the patients' operator -------------------------------------------------------


@pytest.fixture
def patient_peer(start_peer, settings):  # noqa: F811 - the imported fixture
    """A real aiosmtpd peer with STARTTLS standing for Mon espace santé: the patients' domain
    is in the trust list with the peer's certificate DN, and routed to the peer."""
    peer = start_peer()
    trust_list = TrustList.objects.get(status=TrustList.Status.ACTIVE)
    TrustedEntry.objects.create(
        trust_list=trust_list, domain="patient.mssante.fr", dn=PEER_DN,
        dn_canonical=dn_canonical(PEER_DN),
    )  # fmt: skip
    settings.DELIVERY_ROUTES = f"patient.mssante.fr=127.0.0.1:{peer.port}"
    return peer


def test_the_message_goes_out_to_the_patients_operator_over_tls(
    alice, patient_peer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = patient_post(client_for(alice), alice, patient_no_reply="on")
    assert response.status_code == 302
    sent = Message.objects.get(mailbox=mailbox_of(alice))
    row = OutboundDelivery.objects.get(message=sent)
    assert row.status == DeliveryStatus.DELIVERED, row.reason
    [received] = patient_peer.received
    assert received.rcpt_tos == [ADDRESS]
    assert received.content == blob_bytes(sent.raw)
    assert patient_peer.handler.tls_seen == [True]
    mime = message_from_bytes(received.content, policy=policy.default)
    assert mime["X-MSS-MES"] == "FIN"
    assert mime["Disposition-Notification-To"] == mailbox_of(alice).address


def test_the_patients_operator_must_be_in_the_trust_list(
    alice,
    start_peer,  # noqa: F811 - the fixture imported above
    settings,
    django_capture_on_commit_callbacks,
):
    """Routed to a peer but not listed: the DN check fails, nothing reaches the peer."""
    peer = start_peer()
    settings.DELIVERY_ROUTES = f"patient.mssante.fr=127.0.0.1:{peer.port}"
    with django_capture_on_commit_callbacks(execute=True):
        patient_post(client_for(alice), alice)
    row = OutboundDelivery.objects.get(route=Route.PATIENT)
    assert row.status != DeliveryStatus.DELIVERED
    assert peer.received == []


# --- Display ----------------------------------------------------------------------------------


def from_patient(user, *, subject="Question sur mon traitement") -> Message:
    raw = (
        f"From: {ADDRESS}\r\nTo: {user.email}\r\nSubject: {subject}\r\n"
        "Date: Mon, 9 Nov 2026 10:00:00 +0100\r\nMessage-ID: <p1@patient.mssante.fr>\r\n"
        "\r\nBonjour docteur,\r\nune question.\r\n"
    ).encode()
    return message_deliver_raw(mailbox=mailbox_of(user), raw=raw)


def test_sent_patient_messages_show_the_badge_in_the_list(alice):
    client = client_for(alice)
    patient_post(client, alice)
    page = client.get(f"/messagerie/{mailbox_of(alice).pk}/sent/").content.decode()
    assert "badge-patient" in page
    assert "DUPONT Marie Louise" in page
    assert f"INS {INS}" in page
    assert f"{ADDRESS}" not in page  # the raw address is not shown


def test_a_message_from_a_patient_shows_the_badge_with_the_known_name(alice):
    client = client_for(alice)
    inbox = f"/messagerie/{mailbox_of(alice).pk}/inbox/"
    received = from_patient(alice)
    page = client.get(inbox).content.decode()
    assert "badge-patient" in page  # INS from the address
    assert f"INS {INS}" in page
    assert "DUPONT" not in page  # not known yet
    patient_post(client, alice)
    page = client.get(inbox).content.decode()
    assert "DUPONT Marie Louise" in page
    conversation = client.get(f"/messagerie/message/{received.pk}/").content.decode()
    assert "badge-patient" in conversation
    assert "DUPONT Marie Louise" in conversation
    assert f"?patient={INS}" in conversation  # the badge leads to the patient's messages


def test_the_conversation_shows_the_patient_badge(alice):
    client = client_for(alice)
    patient_post(client, alice)
    sent = Message.objects.get(mailbox=mailbox_of(alice))
    page = client.get(f"/messagerie/message/{sent.pk}/").content.decode()
    assert "badge-patient" in page
    assert "DUPONT Marie Louise" in page
    assert f"INS {INS}" in page


def test_search_results_show_the_patient_badge(alice):
    client = client_for(alice)
    patient_post(client, alice)
    from_patient(alice, subject="Question ordonnance")
    page = client.get(
        f"/messagerie/{mailbox_of(alice).pk}/recherche/", {"q": "ordonnance"}
    ).content.decode()
    assert page.count("badge-patient") == 2
    assert "DUPONT Marie Louise" in page


def test_the_patient_filter_finds_messages_to_and_from_the_patient(alice, bob):
    client = client_for(alice)
    patient_post(client, alice)
    from_patient(alice, subject="Question du patient")
    client.post(
        COMPOSE,
        {"mailbox": mailbox_of(alice).pk, "to": bob.email, "subject": "Autre chose",
         "text": "Bonjour"},
    )  # fmt: skip
    page = client.get(f"/messagerie/{mailbox_of(alice).pk}/inbox/?patient={INS}").content.decode()
    assert "Votre ordonnance" in page
    assert "Question du patient" in page
    assert "Autre chose" not in page
    assert "DUPONT Marie Louise · INS" in page  # the filter names the patient
    other = client.get(f"/messagerie/{mailbox_of(alice).pk}/inbox/?patient={OTHER_INS}")
    assert "Votre ordonnance" not in other.content.decode()


def test_the_folder_page_runs_a_constant_number_of_queries(
    alice, django_assert_max_num_queries, django_assert_num_queries
):
    client = client_for(alice)
    box = mailbox_of(alice).pk
    patient_post(client, alice)
    from_patient(alice)
    urls = [f"/messagerie/{box}/sent/", f"/messagerie/{box}/inbox/",
            f"/messagerie/{box}/inbox/?patient={INS}"]  # fmt: skip
    counts = {}
    for url in urls:
        with django_assert_max_num_queries(16) as captured:
            client.get(url)
        counts[url] = len(captured.captured_queries)
    for n in range(4):
        patient_post(client, alice, subject=f"Suite {n}")
        from_patient(alice, subject=f"Question {n}")
    for url in urls:
        with django_assert_num_queries(counts[url]):
            client.get(url)


def test_another_user_cannot_see_a_patient_message(alice, bob):
    patient_post(client_for(alice), alice)
    sent = Message.objects.get(mailbox=mailbox_of(alice))
    client = client_for(bob)
    assert client.get(f"/messagerie/message/{sent.pk}/").status_code == 404
    page = client.get(f"/messagerie/{mailbox_of(bob).pk}/inbox/?patient={INS}").content.decode()
    assert "Votre ordonnance" not in page
    assert "DUPONT" not in page
    assert client.get(f"/messagerie/{mailbox_of(alice).pk}/sent/").status_code == 404


def test_a_draft_keeps_the_patient_block(alice):
    client = client_for(alice)
    response = patient_post(client, alice, save_draft="1", patient_no_reply="on")
    assert response.status_code == 302
    draft = Message.objects.get(folder__kind=FolderKind.DRAFTS)
    assert draft.draft_state["patient_ins"] == INS
    assert not PatientRecipient.objects.exists()  # a draft goes nowhere
    page = client.get(f"{COMPOSE}?brouillon={draft.pk}").content.decode()
    assert f'value="{INS}"' in page
    assert 'value="Dupont"' in page
    assert 'value="1962-01-15"' in page
    assert 'data-open="1"' in page  # the block shows open


def test_nothing_to_send_to_is_refused(alice):
    response = client_for(alice).post(
        COMPOSE, {"mailbox": mailbox_of(alice).pk, "subject": "Rien", "text": "Bonjour"}
    )
    assert "Indiquez au moins un destinataire." in response.content.decode()
    assert not Message.objects.exists()
