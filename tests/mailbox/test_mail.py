import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.attachments.services import blob_bytes
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.mailbox.models import FolderKind, Mailbox, MailboxKind, MailboxMembership, Message
from tests.conftest import client_for, mailbox_of, make_user

pytestmark = pytest.mark.django_db

COMPOSE = "/messagerie/ecrire/"


def send(client, user, to, **extra):
    data = {"mailbox": mailbox_of(user).pk, "to": to, "subject": "Compte rendu",
            "text": "Bonjour,\nvoici le compte rendu.\n", **extra}  # fmt: skip
    return client.post(COMPOSE, data)


def test_sending_to_a_local_colleague_delivers_both_copies(alice, bob):
    client = client_for(alice)
    response = send(client, alice, f"Dr Bob <{bob.email}>")
    assert response.status_code == 302
    sent = Message.objects.get(mailbox=mailbox_of(alice))
    received = Message.objects.get(mailbox=mailbox_of(bob))
    assert sent.folder.kind == FolderKind.SENT
    assert received.folder.kind == FolderKind.INBOX
    assert sent.message_id == received.message_id
    assert not received.is_read
    assert received.recipients.get().address == bob.email
    raw = blob_bytes(sent.raw)
    assert b"Message-ID: <" + sent.message_id.encode() + b">" in raw
    assert b"Subject: Compte rendu" in raw
    assert AuditEvent.objects.filter(event=Event.MESSAGE_SENT, actor=alice).exists()
    assert AuditEvent.objects.filter(event=Event.MESSAGE_DELIVERED_LOCALLY).count() == 1
    audit_text = str(list(AuditEvent.objects.values_list("detail", flat=True)))
    assert "Compte rendu" not in audit_text


def test_recipient_outside_the_operator_is_refused_and_nothing_is_stored(alice):
    client = client_for(alice)
    response = send(client, alice, "someone@autre-operateur.mssante.fr")
    assert response.status_code == 200
    # Not in the trust list (federation, apps/delivery): refused before anything is stored.
    assert "hors de l&#x27;espace de confiance MSSanté" in response.content.decode()
    # What was typed is kept.
    assert "voici le compte rendu" in response.content.decode()
    assert not Message.objects.exists()


def test_malformed_address_is_refused(alice):
    response = send(client_for(alice), alice, "pas une adresse")
    assert "Adresse invalide" in response.content.decode()


def test_attachment_is_stored_encrypted_and_downloaded_by_the_recipient(alice, bob, settings):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 400
    client = client_for(alice)
    send(client, alice, bob.email,
         files=[SimpleUploadedFile("compte rendu été.pdf", pdf, "application/pdf")])  # fmt: skip
    received = Message.objects.get(mailbox=mailbox_of(bob))
    attachment = received.attachments.get()
    assert received.has_attachments
    # At rest, the stored bytes are not the PDF.
    from django.core.files.storage import default_storage

    with default_storage.open(attachment.blob.name, "rb") as stored:
        assert pdf[:64] not in stored.read()
    bob_client = client_for(bob)
    response = bob_client.get(reverse("mailbox:attachment", args=[attachment.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == pdf
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "filename*=utf-8''compte%20rendu%20%C3%A9t%C3%A9.pdf" in response["Content-Disposition"]
    assert AuditEvent.objects.filter(event=Event.ATTACHMENT_DOWNLOADED, actor=bob).exists()


def test_nobody_else_can_read_list_or_download(alice, bob):
    send(client_for(alice), alice, bob.email,
         files=[SimpleUploadedFile("a.txt", b"secret", "text/plain")])  # fmt: skip
    received = Message.objects.get(mailbox=mailbox_of(bob))
    eve = make_user(first_name="Eve", last_name="Curieuse")
    eve_client = client_for(eve)
    assert eve_client.get(reverse("mailbox:message", args=[received.pk])).status_code == 404
    attachment = received.attachments.get()
    assert eve_client.get(reverse("mailbox:attachment", args=[attachment.pk])).status_code == 404
    folder_url = reverse("mailbox:folder", args=[received.mailbox_id, "inbox"])
    assert eve_client.get(folder_url).status_code == 404
    reply = eve_client.get(COMPOSE, {"repondre": received.pk})
    assert reply.status_code == 404


def test_reading_marks_read_once_and_shows_the_body_escaped(alice, bob):
    send(client_for(alice), alice, bob.email, text="<script>alert(1)</script> voir https://ans.fr")
    received = Message.objects.get(mailbox=mailbox_of(bob))
    bob_client = client_for(bob)
    page = bob_client.get(reverse("mailbox:message", args=[received.pk]))
    html = page.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert 'href="https://ans.fr"' in html
    bob_client.get(reverse("mailbox:message", args=[received.pk]))
    received.refresh_from_db()
    assert received.is_read
    assert AuditEvent.objects.filter(event=Event.MESSAGE_READ, actor=bob).count() == 1


def test_reply_threads_into_one_conversation(alice, bob):
    send(client_for(alice), alice, bob.email)
    first = Message.objects.get(mailbox=mailbox_of(bob))
    bob_client = client_for(bob)
    form = bob_client.get(COMPOSE, {"repondre": first.pk})
    assert form.context["form"].initial["subject"] == "Re: Compte rendu"
    response = bob_client.post(COMPOSE, {
        "mailbox": mailbox_of(bob).pk, "to": alice.email, "subject": "Re: Compte rendu",
        "text": "Merci !", "reply_to": first.pk,
    })  # fmt: skip
    assert response.status_code == 302
    alice_copies = Message.objects.filter(mailbox=mailbox_of(alice)).order_by("date", "id")
    assert len({m.conversation_id for m in alice_copies}) == 1
    reply = alice_copies.last()
    assert reply.in_reply_to == first.message_id
    first.refresh_from_db()
    assert first.is_answered
    page = client_for(alice).get(reverse("mailbox:message", args=[reply.pk]))
    assert len(page.context["thread"]) == 2


def test_shared_mailbox_members_send_and_read(alice, bob):
    practice = Mailbox.objects.create(
        address=f"cabinet@{alice.domain.name}", kind=MailboxKind.ORGANISATIONAL,
        domain=alice.domain, display_name="Cabinet",
    )  # fmt: skip
    MailboxMembership.objects.create(mailbox=practice, user=alice)
    client = client_for(alice)
    response = client.post(COMPOSE, {"mailbox": practice.pk, "to": bob.email, "subject": "x",
                                     "text": "y"})  # fmt: skip
    assert response.status_code == 302
    sent = Message.objects.get(mailbox=practice)
    assert sent.sent_by == alice
    assert client.get(reverse("mailbox:folder", args=[practice.pk, "sent"])).status_code == 200
    assert (
        client_for(bob).get(reverse("mailbox:folder", args=[practice.pk, "sent"])).status_code
        == 404
    )
    # Bob cannot send as the practice either.
    bob_client = client_for(bob)
    response = bob_client.post(COMPOSE, {"mailbox": practice.pk, "to": alice.email,
                                         "subject": "x", "text": "y"})  # fmt: skip
    assert response.status_code == 200
    assert Message.objects.filter(mailbox=practice).count() == 1


def test_compose_prefills_the_recipient(alice):
    page = client_for(alice).get(COMPOSE, {"to": "helene.lefevre@chirurgien-dentiste.mssante.fr"})
    assert 'value="helene.lefevre@chirurgien-dentiste.mssante.fr"' in page.content.decode()


def test_folder_page_has_a_constant_number_of_queries(alice, bob, django_assert_max_num_queries):
    client = client_for(alice)
    for n in range(3):
        send(client, alice, bob.email, subject=f"n{n}")
    bob_client = client_for(bob)
    url = reverse("mailbox:folder", args=[mailbox_of(bob).pk, "inbox"])
    with django_assert_max_num_queries(14):
        page = bob_client.get(url)
    assert len(page.context["rows"]) == 3
    for n in range(10):
        send(client, alice, bob.email, subject=f"m{n}")
    with django_assert_max_num_queries(14):
        page = bob_client.get(url)
    assert len(page.context["rows"]) == 13


def test_urgent_flag_and_read_receipt_are_on_the_wire(alice, bob):
    send(client_for(alice), alice, bob.email, urgent="on", read_receipt="on")
    received = Message.objects.get(mailbox=mailbox_of(bob))
    assert received.is_urgent
    raw = blob_bytes(received.raw)
    assert b"Importance: high" in raw
    assert b"X-Priority: 1" in raw
    assert b"Disposition-Notification-To:" in raw


def test_a_full_recipient_mailbox_refuses_and_keeps_what_was_typed(alice, bob):
    Mailbox.objects.filter(owner=bob).update(quota_bytes=1000, used_bytes=990)
    response = send(client_for(alice), alice, bob.email)
    assert response.status_code == 200
    assert "est pleine" in response.content.decode()
    assert "voici le compte rendu" in response.content.decode()
    assert not Message.objects.exists()


def test_usage_is_counted_and_shown(alice, bob):
    client = client_for(alice)
    send(client, alice, bob.email)
    bob_box = mailbox_of(bob)
    assert bob_box.used_bytes == Message.objects.get(mailbox=bob_box).size > 0
    page = client.get(reverse("mailbox:folder", args=[mailbox_of(alice).pk, "sent"]))
    assert "Espace utilisé" in page.content.decode()


def test_staff_granting_a_member_is_audited(alice, bob):
    staff = make_user(staff=True)
    admin = client_for(staff)
    practice = Mailbox.objects.create(
        address=f"secretariat@{alice.domain.name}", kind=MailboxKind.ORGANISATIONAL,
        domain=alice.domain, display_name="Secrétariat",
    )  # fmt: skip
    response = admin.post(
        f"/admin/mailbox/mailbox/{practice.pk}/change/",
        {
            "display_name": "Secrétariat", "quota_bytes": "",
            "created_at_0": "2026-11-28", "created_at_1": "09:00:00",
            "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-user": bob.pk, "memberships-0-granted_at_0": "2026-11-28",
            "memberships-0-granted_at_1": "10:00:00",
        },
    )  # fmt: skip
    assert response.status_code == 302
    assert practice.members.get() == bob
    event = AuditEvent.objects.get(event=Event.MAILBOX_MEMBERSHIP_CHANGED)
    assert event.actor == staff
    assert event.detail == {"added": [bob.pk], "removed": []}
