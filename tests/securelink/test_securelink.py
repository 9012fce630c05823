import hashlib
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.attachments.services import blob_bytes
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.mailbox.models import FolderKind, Message
from apps.notifications.sms import LocmemBackend
from apps.securelink.models import AccessKind, CodeFailure, SecureLink
from apps.securelink.services import (
    SecureLinkError,
    secure_link_create,
    secure_link_revoke,
    secure_links_expire_sweep,
)
from apps.securelink.views import COOKIE_NAME
from tests.conftest import login
from tests.securelink.conftest import (
    EXTERNAL,
    FILENAME,
    PDF,
    SUBJECT,
    mailbox_of,
    parse,
    send_message,
    token_of,
)

pytestmark = pytest.mark.django_db


def events(kind) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event=kind).order_by("id"))


@pytest.fixture
def made(alice, bob):
    message = send_message(alice, bob)
    result = secure_link_create(user=alice, message=message, address=EXTERNAL)
    return result, token_of(result.notice_raw)


def url(token: str, suffix: str = "") -> str:
    return f"/lien/{token}/{suffix}"


def open_with_code(client: Client, token: str, code: str):
    return client.post(url(token), {"code": code})


# --- The notice --------------------------------------------------------------------------------


def test_notice_carries_the_link_and_nothing_of_the_message(made, alice):
    result, token = made
    notice = parse(result.notice_raw)
    assert b"\r\n" in result.notice_raw
    assert notice["To"] == EXTERNAL
    assert notice["From"].addresses[0].addr_spec == "ne-pas-repondre@127.0.0.1"
    assert "Alice Martin" in notice["From"].addresses[0].display_name
    assert notice["Reply-To"] is None
    text = notice.get_body(("plain",)).get_content()
    assert "Dr Alice Martin" in text
    assert "vous a adressé un message sécurisé" in text
    assert "par votre correspondant" in text
    assert f"/lien/{token}/" in text
    everything = result.notice_raw.decode("ascii") + text + notice["Subject"]
    for secret in ("Bilan", "parodontal", "Lefèvre", "Lef=C3=A8vre", "bilan-lefevre", "plan de"):
        assert secret not in everything
    assert not any(part.get_filename() for part in notice.walk())
    # Only the token's hash is stored; the code is returned to be read aloud, never stored.
    link = result.link
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(SecureLink.objects.filter(pk=link.pk).values().get())
    code = result.code_for_sender
    assert code
    assert code.isdigit()
    assert len(code) == 6
    assert code not in (link.code_hash + link.code_reveal)
    assert [e.detail["channel"] for e in events(Event.SECURE_LINK_CODE_SENT)] == ["oral"]
    assert events(Event.SECURE_LINK_CREATED)[0].actor == alice
    audit_text = str(list(AuditEvent.objects.values_list("detail", flat=True)))
    assert code not in audit_text
    assert token not in audit_text
    assert "Bilan" not in audit_text


def test_subject_is_in_the_notice_only_when_the_sender_allows_it(alice, bob):
    message = send_message(alice, bob)
    result = secure_link_create(user=alice, message=message, address=EXTERNAL, include_subject=True)
    assert SUBJECT in parse(result.notice_raw)["Subject"]


def test_code_by_sms_holds_no_health_data(alice, bob, django_capture_on_commit_callbacks):
    message = send_message(alice, bob)
    with django_capture_on_commit_callbacks(execute=True):
        result = secure_link_create(
            user=alice, message=message, address=EXTERNAL, phone="06 12 34 56 78"
        )
        assert not LocmemBackend.outbox  # sent once the link is saved
    assert result.code_for_sender is None
    assert "par SMS" in parse(result.notice_raw).get_body(("plain",)).get_content()
    [(phone, text)] = LocmemBackend.outbox
    assert phone == "+33612345678"
    code = next(word for word in text.replace(".", " ").split() if word.isdigit())
    assert len(code) == 6
    for secret in ("Bilan", "Lefèvre", "Alice", "Martin", "bilan"):
        assert secret not in text
    assert [e.detail["channel"] for e in events(Event.SECURE_LINK_CODE_SENT)] == ["sms"]
    # The code works.
    response = open_with_code(Client(), token_of(result.notice_raw), code)
    assert response.status_code == 302


def test_a_landline_is_refused_for_sms(alice, bob):
    message = send_message(alice, bob)
    with pytest.raises(SecureLinkError, match="Numéro de mobile invalide"):
        secure_link_create(user=alice, message=message, address=EXTERNAL, phone="01 40 00 00 00")
    assert not SecureLink.objects.exists()


# --- Opening, reading, downloading -------------------------------------------------------------


def test_right_code_opens_the_message_and_the_pdf_downloads_identical(made):
    result, token = made
    client = Client(enforce_csrf_checks=True)
    page = client.get(url(token))
    assert page.status_code == 200
    content = page.content.decode()
    assert "Saisir le code" in content or "saisissez le code" in content
    assert SUBJECT not in content
    assert "parodontal" not in content
    assert page["Referrer-Policy"] == "same-origin"  # nothing to other sites (see views)
    assert "noindex" in page["X-Robots-Tag"]
    assert 'name="robots"' in content
    assert "http://" not in content.replace(page.wsgi_request.build_absolute_uri("/"), "")
    csrf = page.cookies["csrftoken"].value
    response = client.post(url(token), {"code": result.code_for_sender, "csrfmiddlewaretoken":
                                        csrf})  # fmt: skip
    assert response.status_code == 302
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == url(token)

    page = client.get(url(token))
    content = page.content.decode()
    assert SUBJECT in content
    assert "ci-joint le bilan parodontal" in content
    assert FILENAME in content
    attachment = result.link.message.attachments.get()
    download = client.get(url(token, f"pj/{attachment.pk}/"))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    assert download["Content-Disposition"].startswith("attachment")
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Referrer-Policy"] == "no-referrer"

    link = SecureLink.objects.get()
    assert link.first_opened_at is not None
    assert [a.kind for a in link.accesses.all()] == [AccessKind.OPENED, AccessKind.DOWNLOADED]
    [opened] = events(Event.SECURE_LINK_OPENED)
    assert opened.actor is None
    assert opened.actor_label == EXTERNAL
    assert opened.detail["first"] is True
    assert events(Event.SECURE_LINK_DOWNLOADED)[0].detail["attachment"] == attachment.pk
    # A new session (another browser) is audited again, not as the first opening.
    open_with_code(Client(), token, result.code_for_sender)
    assert [e.detail["first"] for e in events(Event.SECURE_LINK_OPENED)] == [True, False]


def test_code_post_without_csrf_token_is_refused(made):
    result, token = made
    client = Client(enforce_csrf_checks=True)
    client.get(url(token))
    assert open_with_code(client, token, result.code_for_sender).status_code == 403
    assert not events(Event.SECURE_LINK_OPENED)


def test_without_session_nothing_of_the_message_is_served(made):
    result, token = made
    client = Client()
    attachment = result.link.message.attachments.get()
    assert client.get(url(token, f"pj/{attachment.pk}/")).status_code == 302
    assert client.get(url(token, "contenu/")).status_code == 403
    assert client.post(url(token, "repondre/"), {"text": "x"}).status_code == 302
    assert not events(Event.SECURE_LINK_DOWNLOADED)
    # A forged cookie does not help.
    client.cookies[COOKIE_NAME] = "eyJsIjoxLCJzIjoxfQ:1abc:forged"
    assert client.get(url(token, f"pj/{attachment.pk}/")).status_code == 302


def test_unknown_token_is_404_and_a_session_does_not_open_another_link(made, alice, bob):
    result, token = made
    assert Client().get(url("A" * 43)).status_code == 404
    assert Client().get(url(token[:-1])).status_code == 404
    other = secure_link_create(user=alice, message=send_message(alice, bob), address=EXTERNAL)
    other_token = token_of(other.notice_raw)
    client = Client()
    cookie = open_with_code(client, token, result.code_for_sender).cookies[COOKIE_NAME].value
    # Even sent on the other link's path, the cookie names its own link only.
    client.cookies[COOKIE_NAME] = cookie
    page = client.get(url(other_token))
    assert "saisissez le code" in page.content.decode()
    attachment = other.link.message.attachments.get()
    assert client.get(url(other_token, f"pj/{attachment.pk}/")).status_code == 302
    # An attachment of another message through this link: 404.
    assert client.get(url(token, f"pj/{attachment.pk}/")).status_code == 404


def test_session_ends_after_the_idle_timeout(made, settings):
    result, token = made
    client = Client()
    open_with_code(client, token, result.code_for_sender)
    assert "parodontal" in client.get(url(token)).content.decode()
    settings.SECURE_LINK_SESSION_IDLE_MINUTES = 0
    assert "parodontal" not in client.get(url(token)).content.decode()


def test_html_body_is_served_sanitised_in_a_sandboxed_frame(alice, bob):
    html = '<p>Voir <b>ceci</b></p><script>alert(1)</script><img src="https://evil.example/x.png">'
    message = send_message(alice, bob, html=html)
    result = secure_link_create(user=alice, message=message, address=EXTERNAL)
    token = token_of(result.notice_raw)
    client = Client()
    open_with_code(client, token, result.code_for_sender)
    page = client.get(url(token)).content.decode()
    assert f'src="{url(token, "contenu/")}"' in page
    assert "sandbox=" in page
    frame = client.get(url(token, "contenu/"))
    body = frame.content.decode()
    assert "<b>ceci</b>" in body
    assert "<script" not in body
    assert "evil.example" not in body
    assert "sandbox" in frame["Content-Security-Policy"]
    assert frame["Referrer-Policy"] == "no-referrer"


# --- Wrong codes, lock-out, expiry, revocation -------------------------------------------------


def test_wrong_codes_lock_the_link_and_a_new_code_unlocks_it(made, alice, settings):
    result, token = made
    client = Client()
    wrong = "000000" if result.code_for_sender != "000000" else "111111"
    for left in (4, 3, 2, 1):
        response = open_with_code(client, token, wrong)
        assert response.status_code == 400
        assert f"Il vous reste {left} essai" in response.content.decode()
    response = open_with_code(client, token, wrong)
    assert response.status_code == 403
    assert "verrouillé" in response.content.decode()
    # Locked: even the right code is refused now, with the same clear page.
    response = open_with_code(client, token, result.code_for_sender)
    assert response.status_code == 403
    assert "nouveau code" in response.content.decode()
    assert client.get(url(token)).status_code == 403
    assert len(events(Event.SECURE_LINK_CODE_FAILED)) == 5
    assert len(events(Event.SECURE_LINK_LOCKED)) == 1
    assert SecureLink.objects.get().locked_at is not None
    assert not events(Event.SECURE_LINK_OPENED)

    # The sender sees it locked and gives a new code, shown once on their page.
    sender = Client()
    login(sender, alice)
    page = sender.get(f"/messagerie/message/{result.link.message_id}/").content.decode()
    assert "verrouillé" in page
    assert result.code_for_sender not in page  # shown by the compose flow, not here
    response = sender.post(f"/messagerie/lien/{result.link.pk}/nouveau-code/")
    assert response.status_code == 302
    page = sender.get(response["Location"]).content.decode()
    new_code = page.split('class="secure-link-code">')[1].split("<")[0]
    assert new_code.isdigit()
    assert len(new_code) == 6
    assert new_code not in sender.get(response["Location"]).content.decode()  # once only
    assert open_with_code(client, token, new_code).status_code == 302
    assert len(events(Event.SECURE_LINK_CODE_SENT)) == 2


def test_one_address_trying_many_links_is_throttled(made, settings):
    result, token = made
    settings.SECURE_LINK_MAX_ATTEMPTS_PER_IP = 2
    client = Client()
    open_with_code(client, token, "999999x")
    open_with_code(client, token, "999998x")
    response = open_with_code(client, token, result.code_for_sender)
    assert response.status_code == 429
    assert "Trop d&#x27;essais" in response.content.decode()
    assert CodeFailure.objects.count() == 2
    # Another address is not affected.
    other = Client(REMOTE_ADDR="192.0.2.7")
    assert open_with_code(other, token, result.code_for_sender).status_code == 302


def test_expired_link_shows_a_clear_page_and_is_audited_once(made):
    result, token = made
    client = Client()
    open_with_code(client, token, result.code_for_sender)
    SecureLink.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    for _ in range(2):
        response = client.get(url(token))
        assert response.status_code == 410
        assert "Ce lien a expiré" in response.content.decode()
        assert "parodontal" not in response.content.decode()
    attachment = result.link.message.attachments.get()
    assert client.get(url(token, f"pj/{attachment.pk}/")).status_code == 410
    assert len(events(Event.SECURE_LINK_EXPIRED)) == 1
    assert secure_links_expire_sweep() == 0


def test_the_sweep_audits_expired_links(made):
    SecureLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert secure_links_expire_sweep() == 1
    assert secure_links_expire_sweep() == 0
    assert len(events(Event.SECURE_LINK_EXPIRED)) == 1


def test_revoking_closes_the_link_and_its_open_sessions(made, alice):
    result, token = made
    client = Client()
    open_with_code(client, token, result.code_for_sender)
    sender = Client()
    login(sender, alice)
    response = sender.post(f"/messagerie/lien/{result.link.pk}/revoquer/")
    assert response.status_code == 302
    response = client.get(url(token))
    assert response.status_code == 410
    assert "révoqué par votre correspondant" in response.content.decode()
    [revoked] = events(Event.SECURE_LINK_REVOKED)
    assert revoked.actor == alice
    assert (
        "révoqué le"
        in sender.get(f"/messagerie/message/{result.link.message_id}/").content.decode()
    )
    # Revoking twice records nothing more.
    secure_link_revoke(user=alice, link=result.link)
    assert len(events(Event.SECURE_LINK_REVOKED)) == 1


def test_another_user_cannot_revoke_or_renew(made, bob):
    result, _token = made
    client = Client()
    login(client, bob)
    assert client.post(f"/messagerie/lien/{result.link.pk}/revoquer/").status_code == 404
    assert client.post(f"/messagerie/lien/{result.link.pk}/nouveau-code/").status_code == 404
    assert SecureLink.objects.get().revoked_at is None


# --- Replies -----------------------------------------------------------------------------------


def test_reply_lands_in_the_senders_inbox_threaded_and_is_limited(made, alice, settings):
    settings.SECURE_LINK_MAX_REPLIES = 2
    result, token = made
    link = result.link
    SecureLink.objects.filter(pk=link.pk).update(replies_left=2)
    client = Client()
    open_with_code(client, token, result.code_for_sender)
    photo = SimpleUploadedFile("radio.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 200, "image/png")
    response = client.post(
        url(token, "repondre/"), {"text": "Merci, je prends rendez-vous.", "files": [photo]}
    )
    assert response.status_code == 302
    assert "Votre réponse a été transmise" in client.get(response["Location"]).content.decode()
    reply = Message.objects.get(mailbox=mailbox_of(alice), folder__kind=FolderKind.INBOX)
    original = link.message
    assert reply.from_address == EXTERNAL
    assert reply.in_reply_to == original.message_id
    assert reply.conversation_id == original.conversation_id
    assert reply.subject == f"Re: {SUBJECT}"
    assert "je prends rendez-vous" in reply.text_body
    assert blob_bytes(reply.attachments.get().blob).startswith(b"\x89PNG")
    assert b"X-Mssweb-Via: lien-securise" in blob_bytes(reply.raw)
    assert events(Event.SECURE_LINK_REPLIED)[0].detail["reply"] == reply.pk

    assert client.post(url(token, "repondre/"), {"text": "Encore une"}).status_code == 302
    page = client.get(url(token)).content.decode()
    assert "toutes les réponses permises" in page
    response = client.post(url(token, "repondre/"), {"text": "Une de trop"})
    assert response.status_code == 400
    assert "toutes les réponses permises" in response.content.decode()
    assert Message.objects.filter(mailbox=mailbox_of(alice), folder__kind="inbox").count() == 2


def test_empty_or_oversized_replies_are_refused_clearly(made, settings):
    result, token = made
    settings.SECURE_LINK_REPLY_MAX_SIZE = 1000
    client = Client()
    open_with_code(client, token, result.code_for_sender)
    response = client.post(url(token, "repondre/"), {"text": "  "})
    assert response.status_code == 400
    big = SimpleUploadedFile("gros.bin", b"x" * 2000, "application/octet-stream")
    response = client.post(url(token, "repondre/"), {"text": "voici", "files": [big]})
    assert response.status_code == 400
    assert "dépassent" in response.content.decode()
    assert not events(Event.SECURE_LINK_REPLIED)


# --- The sender's panel ------------------------------------------------------------------------


def test_sender_sees_opened_views_and_downloads(made, alice):
    result, token = made
    client = Client()
    open_with_code(client, token, result.code_for_sender)
    attachment = result.link.message.attachments.get()
    b"".join(client.get(url(token, f"pj/{attachment.pk}/")).streaming_content)
    sender = Client()
    login(sender, alice)
    page = sender.get(f"/messagerie/message/{result.link.message_id}/").content.decode()
    assert EXTERNAL in page
    assert "ouvert le" in page
    assert f"téléchargement de {FILENAME}" in page
    assert "consultation" in page


def test_message_page_queries_do_not_grow_with_links(alice, bob):
    message = send_message(alice, bob)
    secure_link_create(user=alice, message=message, address=EXTERNAL)
    sender = Client()
    login(sender, alice)
    path = f"/messagerie/message/{message.pk}/"
    sender.get(path)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert sender.get(path).status_code == 200
        return len(queries.captured_queries)

    one = count()
    assert one > 5
    for n in range(3):
        secure_link_create(user=alice, message=message, address=f"autre{n}@gmail.example")
    sender.get(path)  # shows the new codes, once
    assert count() == one
