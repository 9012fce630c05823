"""The compose page says which recipients are outside the trust space before sending, keeps
what was typed (and attached), and shows passphrases or codes once after sending."""

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.delivery.models import OutboundDelivery
from apps.directory.services import contact_save
from apps.external.services import contact_key_import
from apps.mailbox.models import FolderKind, Message
from tests.conftest import client_for, mailbox_of
from tests.external.conftest import ALICE, NOKEY

COMPOSE = "/messagerie/ecrire/"
TEXT = "Bonjour,\nvoici le compte rendu de la séance.\n"


def form(user, to, **extra):
    return {"mailbox": mailbox_of(user).pk, "to": to, "subject": "Compte rendu de séance",
            "text": TEXT, "external_protection": "files", **extra}  # fmt: skip


def test_compose_warns_before_sending_and_keeps_everything_typed(dentist, settings):
    client = client_for(dentist)
    upload = SimpleUploadedFile("cr.pdf", b"%PDF-1.4 test", content_type="application/pdf")
    response = client.post(COMPOSE, {**form(dentist, NOKEY), "files": upload})
    assert response.status_code == 200
    page = response.content.decode()
    assert "hors de l&#x27;espace de confiance MSSanté" in page
    assert NOKEY in page
    assert "Confirmer l'envoi protégé" in page
    assert "voici le compte rendu de la séance" in page
    assert "Compte rendu de séance" in page
    assert 'value="files" id="id_external_protection_1" checked' in page
    # Nothing sent; the attachment is kept in a draft, listed on the page.
    assert not OutboundDelivery.objects.exists()
    draft = Message.objects.get(folder__kind=FolderKind.DRAFTS)
    assert [a.filename for a in draft.attachments.all()] == ["cr.pdf"]
    assert "cr.pdf" in page
    assert f'name="external_confirmed" value="{NOKEY}"' in page

    # Confirming sends, with the draft's attachment, and shows the passphrase once.
    response = client.post(
        COMPOSE, {**form(dentist, NOKEY), "external_confirmed": NOKEY, "draft": draft.pk}
    )
    assert response.status_code == 302
    assert response["Location"] == "/externe/envoye/"
    sent = Message.objects.get(folder__kind=FolderKind.SENT)
    assert sent.has_attachments
    assert not Message.objects.filter(folder__kind=FolderKind.DRAFTS).exists()
    row = OutboundDelivery.objects.get(message=sent)
    assert (row.recipient, row.route) == (NOKEY, "external")
    page = client.get("/externe/envoye/").content.decode()
    assert "mot de passe" in page
    assert NOKEY in page
    assert client.get("/externe/envoye/").status_code == 302  # once only


def test_the_status_of_the_external_recipient_shows_on_the_message(dentist):
    client = client_for(dentist)
    client.post(COMPOSE, {**form(dentist, NOKEY), "external_confirmed": NOKEY})
    sent = Message.objects.get(folder__kind=FolderKind.SENT)
    page = client.get(f"/messagerie/message/{sent.pk}/").content.decode()
    assert NOKEY in page


def test_refuse_policy_on_the_compose_page(dentist, settings):
    settings.EXTERNAL_RECIPIENTS_POLICY = "refuse"
    response = client_for(dentist).post(
        COMPOSE, {**form(dentist, NOKEY), "external_confirmed": NOKEY}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "n&#x27;autorise pas l&#x27;envoi vers une messagerie non sécurisée" in page
    assert "voici le compte rendu de la séance" in page
    assert not Message.objects.filter(folder__kind=FolderKind.SENT).exists()
    assert AuditEvent.objects.filter(event=Event.EXTERNAL_RECIPIENT_REFUSED).count() == 1


def test_routes_endpoint_lists_external_recipients_and_known_keys(dentist, recipient_keys):
    contact = contact_save(owner=dentist, email=ALICE, display_name="Alice")
    key = contact_key_import(user=dentist, contact=contact, data=recipient_keys.public[ALICE])
    client = client_for(dentist)
    response = client.get(
        "/externe/routes/", {"addresses": f"Alice <{ALICE}>, {NOKEY}; {dentist.email}"}
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-store"
    data = response.json()
    assert data["policy"] == "protect"
    assert data["external"] == [
        {"address": ALICE, "openpgp": True, "fingerprint": key.fingerprint_display},
        {"address": NOKEY, "openpgp": False, "fingerprint": ""},
    ]
    assert client.post("/externe/routes/", {"addresses": NOKEY}).status_code == 405


def test_routes_endpoint_is_rate_limited_and_needs_a_login(dentist, settings, client):
    assert client.get("/externe/routes/", {"addresses": NOKEY}).status_code == 302
    settings.EXTERNAL_ROUTES_RATE = 2
    logged = client_for(dentist)
    codes = [logged.get("/externe/routes/", {"addresses": NOKEY}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_another_users_keys_are_not_revealed(dentist, recipient_keys):
    from tests.conftest import make_user

    contact = contact_save(owner=dentist, email=ALICE, display_name="Alice")
    contact_key_import(user=dentist, contact=contact, data=recipient_keys.public[ALICE])
    other = client_for(make_user())
    data = other.get("/externe/routes/", {"addresses": ALICE}).json()
    assert data["external"] == [{"address": ALICE, "openpgp": False, "fingerprint": ""}]
