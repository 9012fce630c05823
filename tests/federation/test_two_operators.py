"""Two mssweb operators exchanging mail over real SMTP, mutual TLS and the trust list: a message
with attachments, its reply, and a read receipt.

Operator A is this test process; operator B is the same code run as subprocesses with its own
database, storage and domain (``conftest.peer_operator``). Each gateway asks for the other's
client certificate and checks its DN against the trust list both operators imported.
"""

import hashlib
import io

import pytest
from django.db import transaction
from django.test import Client

from apps.accounts.management.commands.seed_demo import rpps
from apps.accounts.models import Domain
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.delivery.models import DeliveryStatus, OutboundDelivery
from apps.gateway.models import DeliveryOutcome, InboundDelivery, InboundMessage
from apps.mailbox.models import FolderKind, Mailbox, Message
from apps.mailbox.services import Address, OutgoingFile, message_send
from apps.trustlist.dn import dn_canonical
from apps.trustlist.services import trustlist_import
from tests.conftest import PASSWORD, login, make_user
from tests.pki import OUR_DN, PEER_DN

from .conftest import OUR_DOMAIN, PEER_DOMAIN, trust_list_xml

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("allow_audit_flush")]

DOCTOR_B = f"paul.lambert@{PEER_DOMAIN}"
REPORT_PDF = b"%PDF-1.4\n% compte rendu\n" + bytes(range(256)) * 40
RESULTS_TXT = "Hémoglobine : 13,2 g/dL\nPlaquettes : 250 G/L\n".encode()

# --- Scripts run on operator B ------------------------------------------------------------------

B_SETUP = """
from apps.accounts.models import Domain
Domain.objects.get_or_create(name=args["domain"])
result = {"ok": True}
"""

B_OPEN = """
from apps.attachments.services import blob_bytes
from apps.delivery.services import read_receipt_on_open
from apps.gateway.models import InboundMessage
from apps.mailbox.models import FolderKind, Message
from apps.mailbox.services import message_mark_read
import hashlib

message = Message.objects.get(mailbox__address=args["address"], message_id=args["message_id"])
user = message.mailbox.owner
message_mark_read(user=user, message=message)
inbound = InboundMessage.objects.get(message_id=args["message_id"])
result = {
    "folder": message.folder.kind,
    "subject": message.subject,
    "from": message.from_address,
    "text": message.text_body,
    "read_receipt_to": message.read_receipt_to,
    "attachments": sorted(
        (a.filename, a.content_type, hashlib.sha256(blob_bytes(a.blob)).hexdigest())
        for a in message.attachments.select_related("blob")
    ),
    "client_dn": inbound.client_cert_dn,
    "tls": inbound.tls_version,
    "asks_receipt": read_receipt_on_open(user=user, message=message),
}
"""

B_REPLY = """
from apps.delivery.models import OutboundDelivery
from apps.mailbox.models import Mailbox, Message
from apps.mailbox.services import Address, message_send

original = Message.objects.get(mailbox__address=args["address"], message_id=args["message_id"])
mailbox = Mailbox.objects.get(address=args["address"])
reply = message_send(
    user=mailbox.owner, mailbox=mailbox, to=[Address(original.from_name, original.from_address)],
    subject="Re: " + original.subject, text=args["text"], reply_to=original,
)
row = OutboundDelivery.objects.get(message=reply)
result = {"message_id": reply.message_id, "status": row.status, "reason": row.reason}
"""

B_RECEIPT = """
from apps.delivery.models import OutboundDelivery
from apps.delivery.services import read_receipt_answer
from apps.mailbox.models import Message

message = Message.objects.get(mailbox__address=args["address"], message_id=args["message_id"])
sent = read_receipt_answer(user=message.mailbox.owner, message=message, send=True)
row = OutboundDelivery.objects.get(mailbox=message.mailbox, envelope_from="")
result = {"sent": sent, "status": row.status, "reason": row.reason, "recipient": row.recipient}
"""


def test_message_reply_and_read_receipt_between_two_operators(
    gateway, peer_operator, pki, settings, tmp_path
):
    # Operator A: its domain, a doctor, the national list, a gateway asking for client
    # certificates, and delivery presenting its own certificate.
    Domain.objects.create(name=OUR_DOMAIN)
    alice = make_user(email=f"alice.martin@{OUR_DOMAIN}", first_name="Alice", last_name="Martin")
    alice_box = Mailbox.objects.get(owner=alice)
    trust_list = tmp_path / "listeblanchemssante.xml"
    trust_list.write_bytes(trust_list_xml())
    trustlist_import(source=str(trust_list))
    ours = gateway(client_ca_bundle=str(pki.ca), require_client_cert=True)

    # Operator B: started with A's gateway as the route to OUR_DOMAIN; a doctor made with the
    # provisioning command.
    peer = peer_operator(ours.port)
    peer.shell(B_SETUP, domain=PEER_DOMAIN)
    peer.manage(
        "create_account", "--email", DOCTOR_B, "--first-name", "Paul", "--last-name", "Lambert",
        "--idnat", rpps("9970060001"), "--profession", "10", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip

    settings.DELIVERY_ROUTES = f"{PEER_DOMAIN}=127.0.0.1:{peer.gateway_port}"
    settings.DELIVERY_RELAY_HOST = ""
    settings.DELIVERY_CA_BUNDLE = str(pki.ca)
    settings.DELIVERY_CLIENT_CERT, settings.DELIVERY_CLIENT_KEY = map(str, pki.ours)
    settings.DELIVERY_EHLO_NAME = "mx.mssweb.test"
    settings.DELIVERY_SMTP_TIMEOUT = 10

    # 1. A → B, with two attachments and a read receipt asked. The outbox row is pending when
    # the sender's copy commits; the (eager) delivery task runs on commit and delivers it.
    with transaction.atomic():
        sent = message_send(
            user=alice, mailbox=alice_box, to=[Address("Dr Paul Lambert", DOCTOR_B)],
            subject="Demande d'avis : Mme X", text="Cher confrère,\nqu'en pensez-vous ?\n",
            files=[
                OutgoingFile("compte-rendu.pdf", "application/pdf", len(REPORT_PDF),
                             io.BytesIO(REPORT_PDF)),
                OutgoingFile("résultats.txt", "text/plain", len(RESULTS_TXT),
                             io.BytesIO(RESULTS_TXT)),
            ],
            read_receipt=True,
        )  # fmt: skip
        row = OutboundDelivery.objects.get(message=sent)
        assert (row.status, row.route, row.recipient) == (
            DeliveryStatus.PENDING, "operator", DOCTOR_B,
        )  # fmt: skip
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED, (row.reason, peer.gateway_stderr()[-3000:])
    assert row.last_reply == 250
    assert row.delivered_at is not None
    assert list(
        AuditEvent.objects.filter(target_id=str(row.pk), event__in=[
            Event.DELIVERY_QUEUED, Event.DELIVERY_DELIVERED,
        ]).order_by("pk").values_list("event", flat=True)
    ) == [Event.DELIVERY_QUEUED, Event.DELIVERY_DELIVERED]  # fmt: skip

    # 2. B's doctor finds it in the inbox, same Message-ID and attachments, received over TLS
    # from a client presenting A's certificate; the message asks for a read receipt.
    received = peer.shell(B_OPEN, address=DOCTOR_B, message_id=sent.message_id)
    assert received["folder"] == FolderKind.INBOX
    assert received["subject"] == "Demande d'avis : Mme X"
    assert received["from"] == alice_box.address
    assert "qu'en pensez-vous ?" in received["text"]
    assert received["attachments"] == sorted(
        [
            ["compte-rendu.pdf", "application/pdf", hashlib.sha256(REPORT_PDF).hexdigest()],
            ["résultats.txt", "text/plain", hashlib.sha256(RESULTS_TXT).hexdigest()],
        ]
    )
    assert received["client_dn"] == dn_canonical(OUR_DN)
    assert received["tls"] in ("TLSv1.2", "TLSv1.3")
    assert received["read_receipt_to"] == alice_box.address
    assert received["asks_receipt"] is True  # B's setting is "ask": the view offers Envoyer

    # 3. B replies: delivered to A's gateway before B's send returns, threaded at A.
    reply = peer.shell(
        B_REPLY, address=DOCTOR_B, message_id=sent.message_id, text="Bonjour,\nà revoir en juin."
    )
    assert reply["status"] == DeliveryStatus.DELIVERED, reply
    answer = Message.objects.get(mailbox=alice_box, message_id=reply["message_id"])
    assert answer.folder.kind == FolderKind.INBOX
    assert answer.in_reply_to == sent.message_id
    assert answer.conversation_id == sent.conversation_id
    assert answer.subject == "Re: Demande d'avis : Mme X"
    assert "à revoir en juin." in answer.text_body
    inbound = InboundMessage.objects.get(message_id=reply["message_id"])
    assert inbound.client_cert_dn == dn_canonical(PEER_DN)
    assert inbound.mail_from == DOCTOR_B

    # 4. B sends the read receipt (null sender, checked by its From: domain): A's recipient
    # status becomes "lu", and the receipt is not filed as mail.
    before = Message.objects.filter(mailbox=alice_box).count()
    receipt = peer.shell(B_RECEIPT, address=DOCTOR_B, message_id=sent.message_id)
    assert receipt["sent"] is True
    assert receipt["status"] == DeliveryStatus.DELIVERED, receipt
    assert receipt["recipient"] == alice_box.address
    row.refresh_from_db()
    assert row.status == DeliveryStatus.READ
    assert row.get_status_display() == "lu"
    assert row.read_at is not None
    assert Message.objects.filter(mailbox=alice_box).count() == before
    mdn = InboundMessage.objects.exclude(pk=inbound.pk).get()
    assert mdn.mail_from == ""
    assert mdn.client_cert_dn == dn_canonical(PEER_DN)
    assert InboundDelivery.objects.get(inbound=mdn).outcome == DeliveryOutcome.ABSORBED
    assert AuditEvent.objects.filter(event=Event.DELIVERY_READ, target_id=str(row.pk)).exists()

    # Alice sees it in her sent message's status list.
    client = Client()
    login(client, alice)
    page = client.get(f"/messagerie/message/{sent.pk}/").content.decode()
    assert f'<li data-status="read"><span class="delivery-recipient">{DOCTOR_B}</span>' in page
    assert "lu le" in page
