"""A message's trace as readable steps (for the page and the PDF): who did what, when, to
which recipient, with the remote server's reply. Pure presentation of ``selectors.Trace``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from apps.audit.events import Event
from apps.audit.selectors import Trace

# Not shown as steps (each opening of the trace would add one); kept in the JSON export.
HIDDEN_STEPS = (Event.MESSAGE_TRACE_VIEWED,)


@dataclass
class Step:
    seq: int
    row_hash: str
    when: datetime
    event: int
    title: str
    actor: str = ""
    details: list[str] = field(default_factory=list)

    @property
    def when_text(self) -> str:
        return timezone.localtime(self.when).strftime("%d/%m/%Y %H:%M:%S")


@dataclass
class RecipientLine:
    recipient: str
    route: str
    route_label: str
    status: str
    status_label: str
    attempts: int
    delivered_at: datetime | None
    read_at: datetime | None
    reason: str


def route_label(route: str) -> str:
    from apps.trustlist.routing import Route

    labels = {
        Route.LOCAL: _("boîte hébergée par l'opérateur"),
        Route.OPERATOR: _("autre opérateur de l'espace de confiance"),
        Route.PATIENT: _("messagerie patient (Mon espace santé)"),
        Route.EXTERNAL: _("hors espace de confiance"),
    }
    return str(labels.get(route, route))


def recipient_lines(trace: Trace) -> list[RecipientLine]:
    return [
        RecipientLine(
            recipient=row.recipient,
            route=row.route,
            route_label=route_label(row.route),
            status=row.status,
            status_label=str(row.get_status_display()),
            attempts=row.attempts,
            delivered_at=row.delivered_at,
            read_at=row.read_at,
            reason=row.reason,
        )
        for row in trace.deliveries
    ]


def _folder_label(kind: str) -> str:
    from apps.mailbox.models import FolderKind

    try:
        return str(FolderKind(kind).label)
    except ValueError:
        return str(_("un dossier"))


def trace_steps(trace: Trace) -> list[Step]:
    mailboxes = {copy.mailbox_id: copy.mailbox.address for copy in trace.copies}
    steps = []
    for row in trace.events:
        if row.event in HIDDEN_STEPS:
            continue
        detail = row.detail or {}
        who = row.actor_name
        recipient = row.delivery.recipient if getattr(row, "delivery", None) else ""
        step = Step(seq=row.seq, row_hash=row.row_hash, when=row.created_at, event=row.event,
                    title=row.label, actor=who)  # fmt: skip
        match row.event:
            case Event.MESSAGE_SENT:
                step.title = _("Envoyé par %(who)s") % {"who": who}
                box = mailboxes.get(detail.get("mailbox"))
                if box:
                    step.details.append(_("depuis la boîte %(box)s") % {"box": box})
                if "recipients" in detail:
                    count = detail["recipients"]
                    step.details.append(
                        ngettext("%(n)d destinataire", "%(n)d destinataires", count) % {"n": count}
                    )
                if detail.get("attachments"):
                    count = detail["attachments"]
                    step.details.append(
                        ngettext("%(n)d pièce jointe", "%(n)d pièces jointes", count) % {"n": count}
                    )
                if detail.get("urgent"):
                    step.details.append(_("urgent"))
            case Event.MESSAGE_DELIVERED_LOCALLY:
                box = mailboxes.get(detail.get("mailbox"), "")
                step.title = _("Déposé dans la boîte %(box)s") % {"box": box} if box else row.label
            case Event.DELIVERY_QUEUED:
                step.title = _("Remise programmée pour %(to)s") % {"to": recipient}
                step.details.append(route_label(detail.get("route", "")))
            case Event.DELIVERY_DELIVERED | Event.DELIVERY_DEFERRED | Event.DELIVERY_FAILED:
                step.title = f"{row.label} : {recipient}"
                if detail.get("attempts"):
                    step.details.append(_("tentative n° %(n)s") % {"n": detail["attempts"]})
                reply = " ".join(
                    str(part) for part in (detail.get("smtp_reply"), detail.get("status")) if part
                )
                step.details.append(
                    _("réponse du serveur distant : %(reply)s") % {"reply": reply}
                    if reply
                    else _("pas de réponse du serveur distant")
                )
                if detail.get("domain"):
                    step.details.append(_("domaine %(domain)s") % {"domain": detail["domain"]})
            case Event.DELIVERY_READ:
                step.title = _("Lu par %(to)s (accusé de lecture reçu)") % {"to": recipient}
            case Event.DELIVERY_REPORT_RECEIVED:
                step.title = _("Rapport de remise reçu pour %(to)s") % {"to": recipient}
                if detail.get("action"):
                    step.details.append(
                        _("action : %(action)s %(status)s")
                        % {"action": detail["action"], "status": detail.get("status", "")}
                    )
            case Event.MESSAGE_READ:
                step.title = _("Lu par %(who)s") % {"who": who}
            case Event.ATTACHMENT_DOWNLOADED:
                step.title = _("Pièce jointe téléchargée par %(who)s") % {"who": who}
            case Event.MESSAGE_MOVED:
                step.title = _("Déplacé par %(who)s vers %(folder)s") % {
                    "who": who,
                    "folder": _folder_label(detail.get("to_kind", "")),
                }
            case Event.MESSAGE_DELETED:
                step.title = _("Supprimé définitivement par %(who)s") % {"who": who}
            case Event.READ_RECEIPT_SENT:
                step.title = _("Accusé de lecture envoyé par %(who)s") % {"who": who}
                if detail.get("automatic"):
                    step.details.append(_("automatiquement"))
            case Event.INBOUND_ACCEPTED:
                step.title = _("Reçu par la passerelle de l'opérateur")
                if detail.get("tls"):
                    step.details.append(_("chiffré (%(tls)s)") % {"tls": detail["tls"]})
                if detail.get("client_dn"):
                    step.details.append(
                        _("certificat de l'expéditeur : %(dn)s") % {"dn": detail["client_dn"]}
                    )
                if row.ip:
                    step.details.append(_("depuis %(ip)s") % {"ip": row.ip})
            case Event.MESSAGE_TRACE_EXPORTED:
                step.title = _("Traçabilité exportée par %(who)s") % {"who": who}
                if detail.get("format"):
                    step.details.append(str(detail["format"]).upper())
            case _:
                if who:
                    step.title = _("%(what)s par %(who)s") % {"what": row.label, "who": who}
        steps.append(step)
    return steps
