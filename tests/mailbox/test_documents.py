"""Health documents received with a message: filed with the message, shown on a card, listed
by patient — and a package that cannot be trusted is flagged, never lost."""

import io
import zipfile
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from apps.attachments.services import blob_bytes
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.mailbox import services
from apps.mailbox.models import FolderKind, HealthDocument, Mailbox, Message
from tests.conftest import login, make_user
from tests.conftest import mailbox_of as box

pytestmark = pytest.mark.django_db

HERE = Path(__file__).parent
REPORT = HERE / "fixtures" / "report-message.eml"
XDM_DIR = HERE.parent / "ingestion" / "fixtures" / "xdm"
INS = "279035121518989"
DOC = "IHE_XDM/SUBSET01/DOC0001.XML"


@pytest.fixture
def alice_client(alice):
    client = Client()
    login(client, alice)
    return client


def deliver(mailbox: Mailbox, raw: bytes) -> Message:
    return services.message_deliver_raw(mailbox=mailbox, raw=raw)


def sample_entries() -> dict[str, bytes]:
    with zipfile.ZipFile(XDM_DIR / "IHE_XDM.ZIP") as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def make_zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def report_with(package: bytes, *, subject: str = "XDM/1.0/DDM+CR d’imagerie médicale") -> bytes:
    """A report carrying only ``package`` as IHE_XDM.ZIP (no separate PDF)."""
    message = EmailMessage(policy=default_policy)
    message["From"] = "Dr Jacques BIDEAULT <jacques.bideault@medecin.mssante.fr>"
    message["To"] = "claire.morel@chirurgien-dentiste.mssante.fr"
    message["Subject"] = subject
    message["Date"] = "Fri, 08 Jan 2021 10:22:00 +0000"
    message["Message-ID"] = f"<{abs(hash(package))}@medecin.mssante.fr>"
    message["X-MSS-CODECDA"] = "18748-4"
    message["X-MSS-INS"] = "O"
    message.set_content("Veuillez trouver ci-joint le compte rendu.\n")
    message.add_attachment(package, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    return message.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def test_delivered_report_files_its_health_document(alice):
    message = deliver(box(alice), REPORT.read_bytes())
    document = message.documents.get()
    assert document.patient_ins == INS
    assert document.patient_ins_oid == "1.2.250.1.213.1.4.10"
    assert document.patient_family_name == "PAT-TROIS"
    assert document.patient_given_names == "DOMINIQUE"
    assert document.patient_birth_date == date(1979, 3, 28)
    assert document.patient_sex == "F"
    assert document.author_idnat == "801234560801"
    assert document.author_name == "Jacques BIDEAULT"
    assert document.institution == "Centre de radiologie Ambroise"
    assert (document.type_code, document.type_label, document.type_system) == (
        "18748-4", "CR d’imagerie médicale", "2.16.840.1.113883.6.1",
    )  # fmt: skip
    assert document.title == "CR d’imagerie médicale - Scanner Tête + Cou + Thorax avec injection"
    assert document.created_at == datetime(2021, 1, 8, 10, 17, tzinfo=UTC)
    assert document.replaces_previous is True
    assert document.hash_verified is True
    assert document.problems == ""
    assert message.malformed is False
    # The message already attaches the CDA's PDF: that attachment is the rendition, not a copy.
    assert document.rendition.filename == "20210108_CR_d_imagerie_medicale_PAT-TROIS_DOMINIQUE.pdf"
    assert message.attachments.count() == 2
    event = AuditEvent.objects.get(event=Event.DOCUMENT_EXTRACTED)
    assert event.target_id == str(message.pk)
    assert event.detail == {"documents": 1, "rejected": False, "hash_verified": True,
                            "problems": 0}  # fmt: skip


def test_audit_and_logs_hold_no_health_data(alice, caplog):
    deliver(box(alice), REPORT.read_bytes())
    details = str(list(AuditEvent.objects.values_list("detail", flat=True)))
    for needle in (INS, "PAT-TROIS", "BIDEAULT", "18748-4", "1979"):
        assert needle not in details
        assert needle not in caplog.text


def test_report_page_shows_the_document_card(alice, alice_client):
    message = deliver(box(alice), REPORT.read_bytes())
    page = alice_client.get(reverse("mailbox:message", args=[message.pk]))
    html = page.content.decode()
    card = html.split('class="doc-card"', 1)[1].split("</section>", 1)[0]
    for text in ("CR d’imagerie médicale", "PAT-TROIS DOMINIQUE", INS, "28/03/1979",
                 "Jacques BIDEAULT", "IdNat 801234560801", "Centre de radiologie Ambroise",
                 "Intégrité vérifiée", "annule et remplace"):  # fmt: skip
        assert text in card, text
    rendition = message.documents.get().rendition
    assert reverse("mailbox:attachment", args=[rendition.pk]) in card
    chip = f"{reverse('mailbox:folder', args=[message.mailbox_id, 'inbox'])}?patient={INS}"
    assert chip in card
    assert "XDM/1.0/DDM+" not in html
    assert "mal formé" not in html
    pdf = alice_client.get(reverse("mailbox:attachment", args=[rendition.pk]))
    assert b"".join(pdf.streaming_content).startswith(b"%PDF-")


def test_package_alone_gets_its_pdf_as_an_encrypted_attachment(alice):
    message = deliver(box(alice), report_with((XDM_DIR / "IHE_XDM.ZIP").read_bytes()))
    document = message.documents.get()
    assert document.hash_verified
    rendition = document.rendition
    assert rendition.message_id == message.pk
    assert rendition.content_type == "application/pdf"
    assert rendition.filename == (
        "CR d’imagerie médicale - Scanner Tête + Cou + Thorax avec injection.pdf"
    )
    assert rendition.size == 61736
    assert blob_bytes(rendition.blob).startswith(b"%PDF-")


def test_other_subset_folder_is_read_the_same(alice):
    message = deliver(box(alice), report_with((XDM_DIR / "IHE_XDM_SS000001.ZIP").read_bytes()))
    document = message.documents.get()
    assert (document.patient_ins, document.hash_verified) == (INS, True)


def test_altered_document_is_flagged_on_the_card(alice, alice_client):
    files = sample_entries()
    files[DOC] = files[DOC].replace(b"PAT-TROIS", b"PAT-QUATR")
    message = deliver(box(alice), report_with(make_zip(files)))
    document = message.documents.get()
    assert document.hash_verified is False
    assert document.problems.split() == ["hash_mismatch"]
    html = alice_client.get(reverse("mailbox:message", args=[message.pk])).content.decode()
    assert "Intégrité non vérifiée" in html
    assert "L&#x27;empreinte du document ne correspond pas aux métadonnées." in html


def test_unsafe_uri_is_refused_and_flagged(alice):
    files = sample_entries()
    meta = "IHE_XDM/SUBSET01/METADATA.XML"
    files[meta] = files[meta].replace(b">DOC0001.XML<", b">../../README.TXT<")
    message = deliver(box(alice), report_with(make_zip(files)))
    document = message.documents.get()
    assert document.problems.split() == ["document_uri_unsafe"]
    assert document.rendition is None
    assert document.patient_ins == INS  # what the metadata says, flagged as unverified
    assert not document.hash_verified


@pytest.mark.parametrize(
    ("package", "problem"),
    [(b"not a zip at all", "zip_unreadable"),
     (make_zip({"../../etc/cron.d/x": b"* * * * * boom"}), "zip_unsafe_name"),
     (make_zip({"IHE_XDM/SUBSET01/METADATA.XML":
                b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'}),
      "metadata_unsafe")],
    ids=["garbage", "traversal", "xxe"],
)  # fmt: skip
def test_refused_package_still_files_the_message(alice, alice_client, package, problem):
    message = deliver(box(alice), report_with(package))
    assert Message.objects.filter(pk=message.pk, folder__kind=FolderKind.INBOX).exists()
    assert message.malformed is True
    assert message.attachments.filter(filename="IHE_XDM.ZIP").exists()  # kept as received
    document = message.documents.get()
    assert document.problems == problem
    assert document.patient_ins == ""
    event = AuditEvent.objects.get(event=Event.DOCUMENT_EXTRACTED)
    assert event.detail["rejected"] is True
    html = alice_client.get(reverse("mailbox:message", args=[message.pk])).content.decode()
    assert "mal formé" in html
    assert "Intégrité non vérifiée" in html


def test_message_without_xdm_is_unaffected(alice):
    raw = (HERE / "fixtures" / "hostile.eml").read_bytes()
    message = deliver(box(alice), raw)
    assert not message.documents.exists()
    assert not AuditEvent.objects.filter(event=Event.DOCUMENT_EXTRACTED).exists()


def test_malformed_message_has_a_badge_in_list_and_view(alice, alice_client):
    raw = (HERE.parent / "ingestion" / "fixtures" / "malformed-mime.eml").read_bytes()
    message = deliver(box(alice), raw)
    assert message.malformed
    listing = alice_client.get(reverse("mailbox:folder", args=[message.mailbox_id, "inbox"]))
    assert "mal formé" in listing.content.decode()
    view = alice_client.get(reverse("mailbox:message", args=[message.pk]))
    assert "mal formé" in view.content.decode()


def test_filter_by_patient_lists_their_messages_across_the_mailbox(alice, alice_client):
    mailbox = box(alice)
    report = deliver(mailbox, REPORT.read_bytes())
    archived = deliver(mailbox, report_with((XDM_DIR / "IHE_XDM.ZIP").read_bytes()))
    archive = services.folders_ensure(mailbox=mailbox)[FolderKind.ARCHIVE]
    services.messages_move(user=alice, messages=[archived], target=archive)
    other = deliver(mailbox, (HERE / "fixtures" / "hostile.eml").read_bytes())
    url = reverse("mailbox:folder", args=[mailbox.pk, "inbox"])
    page = alice_client.get(url, {"patient": INS})
    assert {m.pk for m in page.context["rows"]} == {report.pk, archived.pk}
    html = page.content.decode()
    assert "PAT-TROIS DOMINIQUE" in html
    assert f"INS {INS}" in html
    assert "Retirer le filtre" in html
    assert {m.pk for m in alice_client.get(url).context["rows"]} == {report.pk, other.pk}
    assert alice_client.get(url, {"patient": "162018885045327"}).context["rows"] == []
    # Anything that is not an INS is ignored, not passed on.
    assert len(alice_client.get(url, {"patient": "' OR 1=1 --"}).context["rows"]) == 2


def test_filter_by_patient_never_shows_another_mailbox(alice, alice_client):
    bob = make_user(first_name="Bob", last_name="Durand")
    bobs = deliver(box(bob), REPORT.read_bytes())
    alices = deliver(box(alice), REPORT.read_bytes())
    own = reverse("mailbox:folder", args=[box(alice).pk, "inbox"])
    rows = alice_client.get(own, {"patient": INS}).context["rows"]
    assert [m.pk for m in rows] == [alices.pk]
    other = reverse("mailbox:folder", args=[box(bob).pk, "inbox"])
    assert alice_client.get(other, {"patient": INS}).status_code == 404
    assert alice_client.get(reverse("mailbox:message", args=[bobs.pk])).status_code == 404
    rendition = bobs.documents.get().rendition
    assert alice_client.get(reverse("mailbox:attachment", args=[rendition.pk])).status_code == 404


def test_folder_page_queries_stay_constant_with_documents(
    alice, alice_client, django_assert_max_num_queries
):
    mailbox = box(alice)
    url = reverse("mailbox:folder", args=[mailbox.pk, "inbox"])
    deliver(mailbox, REPORT.read_bytes())
    with django_assert_max_num_queries(14):
        alice_client.get(url)
    with django_assert_max_num_queries(14):
        alice_client.get(url, {"patient": INS})
    for _ in range(5):
        deliver(mailbox, report_with((XDM_DIR / "IHE_XDM.ZIP").read_bytes()))
    with django_assert_max_num_queries(14):
        page = alice_client.get(url, {"patient": INS})
    assert len(page.context["rows"]) == 6


def test_deleting_the_message_deletes_its_documents(alice):
    message = deliver(box(alice), REPORT.read_bytes())
    services.messages_delete(user=alice, messages=[message])
    message.refresh_from_db()
    services.messages_delete(user=alice, messages=[message])
    assert not HealthDocument.objects.exists()
