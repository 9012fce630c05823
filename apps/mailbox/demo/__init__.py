"""A realistic demo inbox for `make run`: conversations between the demo professionals, a
shared practice mailbox, urgent messages, attachments, and an imaging report with its IHE XDM
package as another operator would send it."""

import io
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from apps.mailbox import services
from apps.mailbox.models import Mailbox, MailboxKind, Message

HERE = Path(__file__).resolve().parent


def _pdf(title: str) -> bytes:
    """A small valid one-page PDF showing ``title`` (ASCII)."""
    text = title.encode("ascii", "replace").replace(b"(", b"[").replace(b")", b"]")
    stream = b"BT /F1 18 Tf 72 720 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def _file(name: str, title: str) -> services.OutgoingFile:
    data = _pdf(title)
    return services.OutgoingFile(
        filename=name, content_type="application/pdf", size=len(data), stream=io.BytesIO(data)
    )


CONVERSATIONS = [
    # (from, to, subject, body, attachment, urgent, reply)
    ("paul", "claire", "Avis orthodontique — Léa B., 12 ans",
     "Bonjour Claire,\n\nJe te transmets le bilan de Léa B. : classe II division 1, "
     "encombrement modéré. Je propose un traitement interceptif ; peux-tu vérifier la carie "
     "sur la 36 avant la pose ?\n\nBien confraternellement,\nPaul",
     ("bilan-orthodontique-lea-b.pdf", "Bilan orthodontique"), False,
     "Merci Paul, je la vois mardi et je te confirme l'état de la 36.\n\nClaire"),
    ("amelie", "claire", "Patient sous anticoagulants — extraction prévue",
     "Bonjour Docteure,\n\nM. R. (72 ans) est sous apixaban. Pour l'extraction de la 47 prévue "
     "jeudi, pas d'arrêt nécessaire selon les recommandations ; hémostase locale soigneuse. "
     "Dernier bilan joint.\n\nDr Amélie Durand",
     ("bilan-biologique-m-r.pdf", "Bilan biologique"), True,
     "Bien reçu, merci. Je prévois l'éponge hémostatique et je vous adresse le compte rendu "
     "après l'intervention."),
    ("claire", "paul", "Remplacement du 14 au 18 décembre",
     "Paul,\n\nPeux-tu prendre mes urgences du 14 au 18 décembre ? Je te laisse les dossiers "
     "en cours au secrétariat.\n\nMerci !", None, False,
     "Oui, pas de souci. Envoie-moi la liste des patients à rappeler."),
    ("paul", "cabinet", "Stérilisation : nouveau protocole",
     "Bonjour à toutes et tous,\n\nLe nouveau protocole de traçabilité de la stérilisation "
     "entre en vigueur lundi. Document joint à imprimer pour la salle de stérilisation.",
     ("protocole-sterilisation.pdf", "Protocole de sterilisation"), False, None),
    ("amelie", "claire", "Adressage : douleur faciale atypique",
     "Je vous adresse Mme T. pour avis : douleur de l'hémiface droite depuis trois semaines, "
     "pas de cause ORL retrouvée. Merci de votre regard.", None, False, None),
    ("claire", "amelie", "Compte rendu — Mme T.",
     "Examen clinique et radiographique : pulpite irréversible sur la 16. Traitement "
     "endodontique commencé aujourd'hui ; la douleur devrait céder. Compte rendu joint.",
     ("compte-rendu-mme-t.pdf", "Compte rendu"), False, None),
]  # fmt: skip


def seed_demo_mail(*, users: dict, practice: Mailbox) -> int:
    """Fill the demo mailboxes; returns the number of messages made. ``users``: "claire",
    "paul", "amelie" → User."""
    boxes = {key: Mailbox.objects.get(owner=user, kind=MailboxKind.PERSONAL)
             for key, user in users.items()}  # fmt: skip
    boxes["cabinet"] = practice
    count = 0
    for sender, recipient, subject, body, attachment, urgent, reply in CONVERSATIONS:
        sender_user = users.get(sender)
        files = [_file(*attachment)] if attachment else []
        sent = services.message_send(
            user=sender_user, mailbox=boxes[sender],
            to=[services.Address(boxes[recipient].display_name, boxes[recipient].address)],
            subject=subject, text=body, files=files, urgent=urgent,
            read_receipt=urgent,
        )  # fmt: skip
        count += 1
        if reply and recipient in users:
            received = Message.objects.get(mailbox=boxes[recipient], message_id=sent.message_id)
            services.message_send(
                user=users[recipient], mailbox=boxes[recipient],
                to=[services.Address(boxes[sender].display_name, boxes[sender].address)],
                subject=f"Re: {subject}", text=reply, reply_to=received,
            )  # fmt: skip
            count += 1
    # Older correspondence, so the lists have some depth.
    for n in range(1, 19):
        sender, recipient = ("paul", "claire") if n % 2 else ("amelie", "claire")
        services.message_send(
            user=users[sender], mailbox=boxes[sender],
            to=[services.Address(boxes[recipient].display_name, boxes[recipient].address)],
            subject=f"Dossier patient n° {1000 + n} — suivi",
            text=f"Bonjour,\n\nSuite de la prise en charge du dossier {1000 + n}. "
                 "Rien d'urgent : à voir lors de votre prochaine consultation.\n\nCordialement",
        )  # fmt: skip
        count += 1
    Message.objects.filter(mailbox__in=boxes.values(), subject__contains="n° 10").update(
        is_read=True
    )
    # An imaging report with its IHE XDM package, as another operator delivers it.
    report = (HERE / "report-message.eml").read_bytes()
    services.message_deliver_raw(mailbox=boxes["claire"], raw=report)
    count += 1
    # Spread the dates over the last weeks (newest first stays meaningful).
    now = timezone.now()
    for index, message in enumerate(
        Message.objects.filter(mailbox__in=boxes.values()).order_by("-id")
    ):
        Message.objects.filter(pk=message.pk).update(date=now - timedelta(hours=5 * index))
    return count
