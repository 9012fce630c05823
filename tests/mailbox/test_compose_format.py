"""Writing with formatting: the editor's HTML is sanitised, sent as text + HTML alternatives,
shown to the recipient in the sandboxed frame, kept in drafts and after a refusal."""

import html as html_lib
import re
from email import message_from_bytes, policy

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.attachments.services import blob_bytes
from apps.ingestion.build import build_message
from apps.mailbox import services
from apps.mailbox.models import FolderKind, Mailbox, Message
from tests.conftest import login, make_user

pytestmark = pytest.mark.django_db
COMPOSE = "/messagerie/ecrire/"

HOSTILE = (
    '<p onclick="steal()">Bonjour <b>cher</b> <span style="color:red">confrère</span>,</p>'
    "<script>alert(1)</script><style>p{}</style>"
    "<ul><li>radio</li><li>bilan</li></ul>"
    '<p><a href="javascript:alert(2)">piège</a> <a href="https://has-sante.fr/reco" '
    'target="_top">la reco</a></p><iframe src="https://evil.example/"></iframe>'
    '<svg onload="alert(3)"></svg><img src="https://evil.example/t.gif">'
    "<blockquote><p>cité</p></blockquote>"
)
CLEAN = (
    "<p>Bonjour <b>cher</b> confrère,</p>"
    "<ul><li>radio</li><li>bilan</li></ul>"
    '<p><a rel="noopener noreferrer">piège</a> <a href="https://has-sante.fr/reco" '
    'rel="noopener noreferrer">la reco</a></p>'
    "<blockquote><p>cité</p></blockquote>"
)
TEXT = (
    "Bonjour cher confrère,\n\n- radio\n- bilan\n\n"
    "piège la reco <https://has-sante.fr/reco>\n\n> cité"
)
FORBIDDEN = ["script", "alert", "onclick", "style", "javascript", "iframe", "svg", "evil", "target"]


@pytest.fixture
def people(db):
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    client = Client()
    login(client, alice)
    return alice, bob, client, Mailbox.objects.get(owner=alice)


def post(client, box, **extra):
    data = {"mailbox": box.pk, "to": "", "subject": "Lettre", "text": "copie du script"}
    data.update(extra)
    return client.post(COMPOSE, data)


def test_hostile_html_is_stored_sanitised_with_its_text_alternative(people):
    _alice, bob, client, box = people
    response = post(client, box, to=bob.email, body_html=HOSTILE)
    assert response.status_code == 302
    sent = Message.objects.get(mailbox=box, folder__kind=FolderKind.SENT)
    received = Message.objects.get(mailbox__owner=bob)
    for copy in (sent, received):
        assert copy.html_body == CLEAN
        assert copy.text_body == TEXT  # made from the sanitised HTML, not the posted copy
        assert copy.snippet.startswith("Bonjour cher confrère,")
    raw = blob_bytes(received.raw)
    for needle in FORBIDDEN:
        assert needle.encode() not in raw.lower()
    message = message_from_bytes(raw, policy=policy.SMTP)
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"


def test_recipient_sees_the_formatting_in_the_sandboxed_frame(people):
    _alice, bob, client, box = people
    post(client, box, to=bob.email, body_html=HOSTILE)
    received = Message.objects.get(mailbox__owner=bob)
    reader = Client()
    login(reader, bob)
    page = reader.get(reverse("mailbox:message", args=[received.pk])).content.decode()
    frame_url = reverse("mailbox:message_html", args=[received.pk])
    assert re.search(r'<iframe class="mail-frame" sandbox="[^"]*" src="' + frame_url, page)
    assert "<b>cher</b>" not in page  # the HTML is only in the frame
    frame = reader.get(frame_url)
    body = frame.content.decode()
    assert "<b>cher</b>" in body
    assert '<a href="https://has-sante.fr/reco"' in body
    for needle in ("<script", "onclick", "javascript:", "<iframe", "<svg", "evil"):
        assert needle not in body
    assert "sandbox" in frame["Content-Security-Policy"]
    assert "script-src" not in frame["Content-Security-Policy"]  # default-src 'none'


def test_without_body_html_the_message_stays_plain_text(people):
    _alice, bob, client, box = people
    post(client, box, to=bob.email, text="Juste du texte\n")
    received = Message.objects.get(mailbox__owner=bob)
    assert received.html_body == ""
    assert received.text_body == "Juste du texte"
    assert b"multipart" not in blob_bytes(received.raw)


def test_an_empty_editor_counts_as_plain_text(people):
    _alice, bob, client, box = people
    post(client, box, to=bob.email, text="le texte", body_html="<p><br></p><script>x</script>")
    received = Message.objects.get(mailbox__owner=bob)
    assert (received.html_body, received.text_body) == ("", "le texte")


def test_message_send_service_sanitises_itself(people):
    alice, bob, _client, box = people
    sent = services.message_send(
        user=alice, mailbox=box, to=services.parse_addresses(bob.email), subject="S",
        text="Bonjour", html='<p onmouseover="x()">Bonjour <u>toi</u></p><script>y()</script>',
    )  # fmt: skip
    assert sent.html_body == "<p>Bonjour <u>toi</u></p>"
    assert b"<script" not in blob_bytes(sent.raw)


def test_a_refused_send_keeps_the_formatted_body(people, settings):
    settings.MAILBOX_MAX_MESSAGE_SIZE = 10
    _alice, bob, client, box = people
    response = post(client, box, to=bob.email, body_html=HOSTILE)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Le message dépasse la taille maximale" in page
    match = re.search(r'data-editor-html="([^"]*)"', page)
    assert html_lib.unescape(match.group(1)) == CLEAN  # sanitised before it is echoed back
    assert 'name="body_html" id="id_body_html" value=""' in page
    assert "copie du script" in page  # the textarea keeps its text too
    assert not Message.objects.filter(mailbox=box).exists()


def test_draft_with_html_is_saved_and_reopens_in_the_editor(people):
    _alice, _bob, client, box = people
    response = post(client, box, to="bob.dur", body_html=HOSTILE, save_draft="1")
    draft = Message.objects.get(mailbox=box, folder__kind=FolderKind.DRAFTS)
    assert response["Location"] == f"{COMPOSE}?brouillon={draft.pk}"
    assert (draft.html_body, draft.text_body) == (CLEAN, TEXT)
    page = client.get(COMPOSE, {"brouillon": draft.pk}).content.decode()
    match = re.search(r'data-editor-html="([^"]*)"', page)
    assert html_lib.unescape(match.group(1)) == CLEAN
    # Autosave keeps it up to date, and turning formatting off empties it.
    client.post(reverse("mailbox:draft_autosave"), {
        "mailbox": box.pk, "draft": draft.pk, "text": "x", "body_html": "<p><i>suite</i></p>",
    })  # fmt: skip
    draft.refresh_from_db()
    assert (draft.html_body, draft.text_body) == ("<p><i>suite</i></p>", "suite")
    client.post(reverse("mailbox:draft_autosave"), {
        "mailbox": box.pk, "draft": draft.pk, "text": "sans forme", "body_html": "",
    })  # fmt: skip
    draft.refresh_from_db()
    assert (draft.html_body, draft.text_body) == ("", "sans forme")
    assert 'data-editor-html=""' in client.get(COMPOSE, {"brouillon": draft.pk}).content.decode()


def test_reply_to_an_html_message_offers_it_as_a_quote(people):
    alice, bob, _client, box = people
    raw = build_message(
        from_=("Bob Durand", bob.email), to=[("", alice.email)], subject="Avis",
        text="Voici mon avis", html="<div>Voici <b>mon avis</b></div><script>x()</script>",
        message_id="avis@test.mssante.fr", date=timezone.now(),
    )  # fmt: skip
    incoming = services.message_deliver_raw(mailbox=box, raw=raw)
    reader = Client()
    login(reader, alice)
    page = reader.get(COMPOSE, {"repondre": incoming.pk}).content.decode()
    quote = html_lib.unescape(re.search(r'data-quote-html="([^"]*)"', page).group(1))
    assert "<b>mon avis</b>" in quote
    assert "<script" not in quote
    head = html_lib.unescape(re.search(r'data-quote-head="([^"]*)"', page).group(1))
    assert head.endswith("Bob Durand a écrit :")
    plain = reader.get(COMPOSE).content.decode()
    assert 'data-quote-html=""' in plain


def test_compose_page_passes_the_size_limit_and_offers_camera_and_drop(people, settings):
    settings.MAILBOX_MAX_MESSAGE_SIZE = 5_000_000
    _alice, _bob, client, _box = people
    page = client.get(COMPOSE).content.decode()
    assert 'data-max-size="5000000"' in page
    assert "(5 Mo)" in page
    camera = r'<input type="file" name="files" accept="image/\*" capture="environment"'
    assert re.search(camera, page)
    assert "Déposez vos fichiers ici" in page
    assert "Mise en forme" in page
    assert re.search(r'<script src="[^"]*js/editor\.js" defer>', page)
