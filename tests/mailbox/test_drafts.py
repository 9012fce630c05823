import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.mailbox.models import FolderKind, Mailbox, Message
from tests.conftest import login, make_user

pytestmark = pytest.mark.django_db
COMPOSE = "/messagerie/ecrire/"


@pytest.fixture
def people(db):
    alice, bob = (
        make_user(first_name="Alice", last_name="A"),
        make_user(first_name="Bob", last_name="B"),
    )
    client = Client()
    login(client, alice)
    return alice, bob, client, Mailbox.objects.get(owner=alice)


def test_save_reopen_and_send_a_draft(people):
    _alice, bob, client, box = people
    response = client.post(COMPOSE, {
        "mailbox": box.pk, "to": "bob.dur", "subject": "Pas fini", "text": "Début du texte",
        "save_draft": "1",
        "files": [SimpleUploadedFile("radio.pdf", b"%PDF radio", "application/pdf")],
    })  # fmt: skip
    draft = Message.objects.get(mailbox=box, folder__kind=FolderKind.DRAFTS)
    assert response["Location"] == f"{COMPOSE}?brouillon={draft.pk}"
    assert draft.draft_state["to"] == "bob.dur"  # kept as typed, even incomplete
    page = client.get(COMPOSE, {"brouillon": draft.pk})
    assert page.context["form"].initial["text"] == "Début du texte"
    assert 'value="bob.dur"' in page.content.decode()
    assert "radio.pdf" in page.content.decode()
    # Opening the draft from the folder leads to compose.
    assert client.get(reverse("mailbox:message", args=[draft.pk]))["Location"].endswith(
        f"brouillon={draft.pk}"
    )
    response = client.post(COMPOSE, {
        "mailbox": box.pk, "to": bob.email, "subject": "Fini", "text": "Texte complet",
        "draft": draft.pk,
    })  # fmt: skip
    assert response.status_code == 302
    assert not Message.objects.filter(pk=draft.pk).exists()
    received = Message.objects.get(mailbox__owner=bob)
    assert received.attachments.get().filename == "radio.pdf"


def test_autosave_endpoint_creates_then_updates_one_draft(people):
    _alice, _bob, client, box = people
    url = reverse("mailbox:draft_autosave")
    first = client.post(url, {"mailbox": box.pk, "to": "x", "subject": "A", "text": "1"}).json()
    second = client.post(url, {"mailbox": box.pk, "to": "x", "subject": "A", "text": "12",
                               "draft": first["draft"]}).json()  # fmt: skip
    assert first["draft"] == second["draft"]
    assert Message.objects.get(pk=first["draft"]).text_body == "12"
    assert Message.objects.filter(folder__kind=FolderKind.DRAFTS).count() == 1


def test_discarding_a_draft_is_audited(people):
    alice, _bob, client, box = people
    client.post(COMPOSE, {"mailbox": box.pk, "subject": "x", "text": "y", "save_draft": "1"})
    draft = Message.objects.get(folder__kind=FolderKind.DRAFTS)
    client.post(COMPOSE, {"draft": draft.pk, "discard": "1"})
    assert not Message.objects.filter(pk=draft.pk).exists()
    assert AuditEvent.objects.filter(event=Event.DRAFT_DISCARDED, actor=alice).exists()


def test_someone_elses_draft_is_404(people):
    _alice, bob, client, box = people
    client.post(COMPOSE, {"mailbox": box.pk, "subject": "x", "text": "secret", "save_draft": "1"})
    draft = Message.objects.get(folder__kind=FolderKind.DRAFTS)
    other = Client()
    login(other, bob)
    assert other.get(COMPOSE, {"brouillon": draft.pk}).status_code == 404
    assert other.post(reverse("mailbox:draft_autosave"),
                      {"draft": draft.pk, "text": "x"}).status_code == 404  # fmt: skip
    draft.refresh_from_db()
    assert draft.text_body == "secret"
