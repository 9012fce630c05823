from pathlib import Path

import pytest
from django.urls import reverse

from apps.attachments.services import blob_bytes
from apps.mailbox import services
from apps.mailbox.models import Mailbox
from tests.conftest import login, make_user

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def alice_client(client):
    alice = make_user(first_name="Alice", last_name="Martin")
    login(client, alice)
    client.mailbox = Mailbox.objects.get(owner=alice)
    return client


def deliver(mailbox, name: str, remote: str = "tracker.example") -> int:
    raw = (FIXTURES / name).read_bytes().replace(b"REMOTE", remote.encode())
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return services.message_deliver_raw(mailbox=mailbox, raw=raw).pk


def test_hostile_html_is_sanitised_and_framed_without_scripts(alice_client):
    pk = deliver(alice_client.mailbox, "hostile.eml")
    page = alice_client.get(reverse("mailbox:message", args=[pk]))
    html = page.content.decode()
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in html
    assert "parent.pwned" not in html
    assert "1 image distante bloquée" in html
    frame = alice_client.get(reverse("mailbox:message_html", args=[pk]))
    body = frame.content.decode().split("<body>", 1)[1]  # the message, after our own head
    csp = frame["Content-Security-Policy"]
    assert "script" not in body.lower().replace("noscript", "")
    for needle in ("onerror", "javascript:", "<svg", "<iframe", "<style", "http-equiv",
                   "<form", "tracker.example", "style="):  # fmt: skip
        assert needle not in body, needle
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # falls back to default-src 'none'
    assert "unsafe-inline" not in csp
    assert "sandbox" in csp
    assert "http" not in csp.split("img-src")[1].split(";")[0]
    assert frame["X-Frame-Options"] == "SAMEORIGIN"


def test_remote_content_on_request_only(alice_client):
    pk = deliver(alice_client.mailbox, "hostile.eml")
    frame = alice_client.get(reverse("mailbox:message_html", args=[pk]), {"distant": "1"})
    assert "http://tracker.example/tracker.gif" in frame.content.decode()
    assert "https:" in frame["Content-Security-Policy"]


def test_report_with_xdm_arrives_with_its_attachments(alice_client):
    pk = deliver(alice_client.mailbox, "report-message.eml")
    page = alice_client.get(reverse("mailbox:message", args=[pk]))
    html = page.content.decode()
    assert "CR d’imagerie médicale PAT-TROIS DOMINIQUE" in html
    assert "XDM/1.0/DDM+" not in html
    assert "IHE_XDM.ZIP" in html
    message = page.context["message"]
    assert message.read_receipt_to
    zip_part = message.attachments.get(filename="IHE_XDM.ZIP")
    assert blob_bytes(zip_part.blob)[:2] == b"PK"


def test_other_users_cannot_open_the_frame(alice_client, client):
    pk = deliver(alice_client.mailbox, "hostile.eml")
    from django.test import Client

    eve = make_user(first_name="Eve", last_name="X")
    other = Client()
    login(other, eve)
    assert other.get(reverse("mailbox:message_html", args=[pk])).status_code == 404


def test_images_preview_inline_but_nothing_else(alice_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.mailbox.models import Message

    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    box = alice_client.mailbox
    alice_client.post("/messagerie/ecrire/", {
        "mailbox": box.pk, "to": box.address, "subject": "img", "text": "x",
        "files": [SimpleUploadedFile("photo.png", png, "image/png"),
                  SimpleUploadedFile("page.html", b"<script>alert(1)</script>", "text/html")],
    })  # fmt: skip
    received = Message.objects.get(mailbox=box, folder__kind="inbox")
    image = received.attachments.get(filename="photo.png")
    html = received.attachments.get(filename="page.html")
    preview = alice_client.get(reverse("mailbox:attachment", args=[image.pk]), {"inline": "1"})
    assert preview["Content-Disposition"].startswith("inline")
    assert "sandbox" in preview["Content-Security-Policy"]
    forced = alice_client.get(reverse("mailbox:attachment", args=[html.pk]), {"inline": "1"})
    assert forced["Content-Disposition"].startswith("attachment")
    assert forced["X-Content-Type-Options"] == "nosniff"
    page = alice_client.get(reverse("mailbox:message", args=[received.pk]))
    assert page.content.decode().count("Aperçu") == 1
