import re
from email import policy
from email.parser import BytesParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.mailbox.models import Message
from apps.mailbox.services import Address, OutgoingFile, message_send
from apps.notifications.sms import LocmemBackend
from tests.conftest import mailbox_of

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 300 + b"\n%%EOF\n"
SUBJECT = "Bilan parodontal de Mme Lefèvre"
BODY = "Bonjour,\nci-joint le bilan parodontal et le plan de traitement.\n"
FILENAME = "bilan-lefevre.pdf"
EXTERNAL = "someone@gmail.example"
LINK_RE = re.compile(r"https?://\S+?/lien/([A-Za-z0-9_-]+)/")


@pytest.fixture(autouse=True)
def _sms(settings):
    settings.SMS_BACKEND = "apps.notifications.sms.LocmemBackend"
    LocmemBackend.outbox.clear()
    yield
    LocmemBackend.outbox.clear()


def send_message(sender, colleague, *, html: str = "", with_pdf: bool = True) -> Message:
    """The sender's copy of a message with a PDF (sent to a local colleague: the secure link is
    then made for the external recipient on that copy)."""
    upload = SimpleUploadedFile(FILENAME, PDF, content_type="application/pdf")
    files = (
        [OutgoingFile(filename=FILENAME, content_type="application/pdf", size=len(PDF),
                      stream=upload.file)]
        if with_pdf else []
    )  # fmt: skip
    return message_send(
        user=sender,
        mailbox=mailbox_of(sender),
        to=[Address(name="", address=colleague.email)],
        subject=SUBJECT,
        text=BODY,
        html=html,
        files=files,
    )


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


def token_of(notice: bytes) -> str:
    """The token of the link in the notice's text (decoded from its transfer encoding)."""
    match = LINK_RE.search(parse(notice).get_body(("plain",)).get_content())
    assert match, notice
    return match.group(1)
