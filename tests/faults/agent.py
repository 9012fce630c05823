"""The fault tests' hands inside a site: ``python -m tests.faults.agent COMMAND [...]`` runs with
the site's environment (its own database and broker, see ``conftest.Site``), does one thing
through the application's services and prints the result as JSON on its last line.

The test process never opens the site's database itself: the site is shared with a worker or a
gateway in other processes, and may even live on a PostgreSQL instance the test restarts."""

import argparse
import json
import os
import sys

PEER_DOMAIN = "peer.mssante.test"
LOCAL_DOMAIN = "gateway.mssante.test"


def sender_setup() -> dict:
    """The sending user and a trust list naming the sink's certificate DN for PEER_DOMAIN."""
    from apps.trustlist.dn import dn_canonical
    from apps.trustlist.models import TrustedEntry, TrustList
    from tests.conftest import make_user
    from tests.pki import PEER_DN

    user = make_user(first_name="Alice", last_name="Martin")
    trust_list = TrustList.objects.create(status=TrustList.Status.ACTIVE, entry_count=1)
    TrustedEntry.objects.create(
        trust_list=trust_list, domain=PEER_DOMAIN, dn=PEER_DN, dn_canonical=dn_canonical(PEER_DN)
    )
    return {"user": user.pk}


def send(*, count: int, to: list[str]) -> dict:
    """``count`` messages from the sender to ``to`` (the delivery tasks go to the broker on
    commit, as in production); returns their Message-IDs."""
    from apps.accounts.models import User
    from apps.mailbox.models import Mailbox
    from apps.mailbox.services import Address, message_send

    user = User.objects.order_by("pk").first()
    mailbox = Mailbox.objects.get(owner=user)
    ids = []
    for n in range(count):
        message = message_send(
            user=user, mailbox=mailbox, to=[Address("", a) for a in to],
            subject=f"Demande d'avis {n}", text=f"Bonjour,\nun avis sur le dossier {n} ?\n",
        )  # fmt: skip
        ids.append(message.message_id)
    return {"message_ids": ids}


def outbox_state() -> dict:
    """Every outbox row, and the delivery-status reports in its sender's inbox."""
    from apps.attachments.services import blob_bytes
    from apps.delivery.models import OutboundDelivery
    from apps.ingestion.parse import parse_message
    from apps.mailbox.models import FolderKind, Message

    rows = [
        {"id": r.pk, "msgid": r.msgid, "recipient": r.recipient, "status": r.status,
         "attempts": r.attempts, "reason": r.reason, "leased": r.lease_until is not None}
        for r in OutboundDelivery.objects.exclude(route="local").order_by("pk")
    ]  # fmt: skip
    mailboxes = {r.mailbox_id for r in OutboundDelivery.objects.only("mailbox_id")}
    reports = []
    inbox = Message.objects.filter(mailbox_id__in=mailboxes, folder__kind=FolderKind.INBOX)
    for message in inbox.select_related("raw"):
        parsed = parse_message(blob_bytes(message.raw))
        if parsed.is_report == "dsn" and parsed.report is not None:
            reports.extend(
                {"msgid": parsed.report.original_message_id, "recipient": entry.final_recipient,
                 "action": entry.action, "status": entry.status}
                for entry in parsed.report.entries
            )  # fmt: skip
    return {"rows": rows, "reports": reports}


def sweep() -> dict:
    from apps.delivery.services import deliveries_sweep

    return {"enqueued": deliveries_sweep()}


def mailbox(*, address: str) -> dict:
    from apps.accounts.models import Domain
    from apps.mailbox.models import Mailbox, MailboxKind

    domain = Domain.objects.get_or_create(name=address.rpartition("@")[2])[0]
    box = Mailbox.objects.create(
        address=address, kind=MailboxKind.ORGANISATIONAL, domain=domain, display_name="Accueil"
    )
    return {"mailbox": box.pk}


def inbound_state(*, address: str) -> dict:
    """What the gateway kept: inbound rows and their outcome, and the copies filed in the
    mailbox ``address``, by Message-ID."""
    from collections import Counter

    from apps.gateway.models import InboundDelivery, InboundMessage
    from apps.mailbox.models import Message

    return {
        "inbound": dict(Counter(InboundMessage.objects.values_list("message_id", flat=True))),
        "inbound_status": dict(Counter(InboundMessage.objects.values_list("status", flat=True))),
        "outcomes": dict(Counter(InboundDelivery.objects.values_list("outcome", flat=True))),
        "filed": dict(
            Counter(
                Message.objects.filter(mailbox__address=address).values_list(
                    "message_id", flat=True
                )
            )
        ),
    }


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.faults.settings")
    import django

    django.setup()
    parser = argparse.ArgumentParser(prog="agent")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sender-setup")
    send_parser = commands.add_parser("send")
    send_parser.add_argument("--count", type=int, default=1)
    send_parser.add_argument("--to", action="append", required=True)
    commands.add_parser("outbox-state")
    commands.add_parser("sweep")
    for name in ("mailbox", "inbound-state"):
        commands.add_parser(name).add_argument("--address", required=True)
    args = parser.parse_args(argv)
    if args.command == "sender-setup":
        result = sender_setup()
    elif args.command == "send":
        result = send(count=args.count, to=args.to)
    elif args.command == "outbox-state":
        result = outbox_state()
    elif args.command == "sweep":
        result = sweep()
    elif args.command == "mailbox":
        result = mailbox(address=args.address)
    else:
        result = inbound_state(address=args.address)
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
