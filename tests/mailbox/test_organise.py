import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from apps.attachments.services import blob_bytes
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.mailbox.models import Folder, FolderKind, Mailbox, Message
from tests.conftest import login, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(db):
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    alice_client, bob_client = Client(), Client()
    login(alice_client, alice)
    login(bob_client, bob)
    box = Mailbox.objects.get(owner=bob)
    for n in range(3):
        alice_client.post("/messagerie/ecrire/", {
            "mailbox": Mailbox.objects.get(owner=alice).pk, "to": bob.email,
            "subject": f"Sujet {n}", "text": "Bonjour",
            **({"files": [SimpleUploadedFile("cr.pdf", b"%PDF-1.4 cr", "application/pdf")]}
               if n == 0 else {}),
        })  # fmt: skip
    return alice, bob, alice_client, bob_client, box


def act(client, box, action, ids, **extra):
    return client.post(
        reverse("mailbox:actions", args=[box.pk]), {"action": action, "ids": ids, **extra}
    )


def test_bulk_archive_then_back_to_inbox(setup):
    _alice, bob, _ac, bob_client, box = setup
    ids = list(Message.objects.filter(mailbox=box).values_list("pk", flat=True))
    act(bob_client, box, "archive", ids[:2])
    assert Message.objects.filter(mailbox=box, folder__kind="archive").count() == 2
    assert AuditEvent.objects.filter(event=Event.MESSAGE_MOVED, actor=bob).count() == 2
    act(bob_client, box, "inbox", ids[:2])
    assert Message.objects.filter(mailbox=box, folder__kind="inbox").count() == 3


def test_bulk_read_unread_and_flag(setup):
    *_rest, bob_client, box = setup
    ids = list(Message.objects.filter(mailbox=box).values_list("pk", flat=True))
    act(bob_client, box, "read", ids)
    assert not Message.objects.filter(mailbox=box, is_read=False).exists()
    act(bob_client, box, "flag", ids[:1])
    assert Message.objects.get(pk=ids[0]).is_flagged


def test_delete_goes_to_trash_then_purges(setup):
    _alice, bob, _ac, bob_client, box = setup
    message = Message.objects.filter(mailbox=box).first()
    act(bob_client, box, "delete", [message.pk])
    message.refresh_from_db()
    assert message.folder.kind == FolderKind.TRASH
    act(bob_client, box, "delete", [message.pk])
    assert not Message.objects.filter(pk=message.pk).exists()
    assert AuditEvent.objects.filter(
        event=Event.MESSAGE_DELETED, actor=bob, target_id=str(message.pk)
    ).exists()


def test_actions_on_someone_elses_messages_do_nothing(setup):
    alice, _bob, alice_client, _bc, box = setup
    ids = list(Message.objects.filter(mailbox=box).values_list("pk", flat=True))
    assert act(alice_client, box, "delete", ids).status_code == 404
    alice_box = Mailbox.objects.get(owner=alice)
    act(alice_client, alice_box, "delete", ids)  # Bob's ids in Alice's mailbox: ignored
    assert Message.objects.filter(mailbox=box, folder__kind="inbox").count() == 3


def test_own_folders_create_nest_move_rename_delete(setup):
    *_rest, bob_client, box = setup
    url = reverse("mailbox:folders", args=[box.pk])
    bob_client.post(url, {"operation": "create", "name": "Orthodontie"})
    ortho = Folder.objects.get(mailbox=box, name="Orthodontie")
    bob_client.post(url, {"operation": "create", "name": "2026", "parent": ortho.pk})
    sub = Folder.objects.get(mailbox=box, name="2026")
    assert sub.parent == ortho
    # Only one level of nesting.
    bob_client.post(url, {"operation": "create", "name": "trop", "parent": sub.pk})
    assert not Folder.objects.filter(name="trop").exists()
    message = Message.objects.filter(mailbox=box).first()
    act(bob_client, box, "move", [message.pk], target=str(sub.pk))
    message.refresh_from_db()
    assert message.folder == sub
    page = bob_client.get(reverse("mailbox:folder", args=[box.pk, sub.pk]))
    assert page.status_code == 200
    assert len(page.context["rows"]) == 1
    # Not empty: refused.
    bob_client.post(url, {"operation": "delete", "folder": sub.pk})
    assert Folder.objects.filter(pk=sub.pk).exists()
    bob_client.post(url, {"operation": "rename", "folder": ortho.pk, "name": "ODF"})
    ortho.refresh_from_db()
    assert ortho.name == "ODF"
    act(bob_client, box, "inbox", [message.pk])
    bob_client.post(url, {"operation": "delete", "folder": sub.pk})
    assert not Folder.objects.filter(pk=sub.pk).exists()


def test_system_folders_cannot_be_deleted(setup):
    *_rest, bob_client, box = setup
    inbox = Folder.objects.get(mailbox=box, kind="inbox")
    response = bob_client.post(
        reverse("mailbox:folders", args=[box.pk]), {"operation": "delete", "folder": inbox.pk}
    )
    assert response.status_code == 404
    assert Folder.objects.filter(pk=inbox.pk).exists()


def test_forward_carries_the_attachments(setup):
    alice, _bob, _alice_client, bob_client, box = setup
    original = Message.objects.get(mailbox=box, has_attachments=True)
    form = bob_client.get("/messagerie/ecrire/", {"transferer": original.pk})
    assert form.context["form"].initial["subject"].startswith("Fwd: ")
    assert "Message transféré" in form.context["form"].initial["text"]
    response = bob_client.post("/messagerie/ecrire/", {
        "mailbox": box.pk, "to": alice.email, "subject": "Fwd: Sujet 0",
        "text": form.context["form"].initial["text"], "forward_of": original.pk,
    })  # fmt: skip
    assert response.status_code == 302
    forwarded = Message.objects.filter(mailbox__owner=alice, folder__kind="inbox").get()
    attachment = forwarded.attachments.get()
    assert attachment.filename == "cr.pdf"
    assert blob_bytes(attachment.blob) == b"%PDF-1.4 cr"
    assert b"cr.pdf" in blob_bytes(forwarded.raw)
    original.refresh_from_db()
    assert original.is_forwarded
