"""Reading the audit trail: a user's own activity, the trace of one message, the staff search.

Access control lives here: a user reads the events they performed or that concern their own
account, and the trace of a message they may open (through the mailbox selectors, 404
otherwise). Every event type has a French label (``EVENT_LABELS``): raw enum names are never
shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.chain import canonical_ip
from apps.audit.events import Event
from apps.audit.models import AuditEvent

PAGE_SIZE = 50
# A login from a device or address not seen in this many days before it is flagged.
SUSPICIOUS_LOOKBACK = timedelta(days=30)
# This many failed attempts in a row (password or code) are flagged.
FAILURES_IN_A_ROW = 3

EVENT_LABELS: dict[Event, str] = {
    Event.LOGIN_SUCCEEDED: _("Mot de passe accepté"),
    Event.LOGIN_FAILED: _("Échec de connexion (mot de passe)"),
    Event.LOGIN_THROTTLED: _("Connexion bloquée (trop de tentatives)"),
    Event.SECOND_FACTOR_SUCCEEDED: _("Connexion réussie (code d'authentification)"),
    Event.SECOND_FACTOR_FAILED: _("Code d'authentification refusé"),
    Event.BACKUP_CODE_USED: _("Connexion avec un code de secours"),
    Event.LOGOUT: _("Déconnexion"),
    Event.SESSION_EXPIRED: _("Session expirée"),
    Event.SESSION_REVOKED: _("Session fermée"),
    Event.PASSWORD_CHANGED: _("Mot de passe changé"),
    Event.PASSWORD_RESET_REQUESTED: _("Réinitialisation du mot de passe demandée"),
    Event.PASSWORD_RESET_COMPLETED: _("Mot de passe réinitialisé"),
    Event.SECOND_FACTOR_ENROLLED: _("Application d'authentification enregistrée"),
    Event.BACKUP_CODES_REGENERATED: _("Nouveaux codes de secours générés"),
    Event.SECOND_FACTOR_RESET_BY_STAFF: _("Second facteur réinitialisé par l'opérateur"),
    Event.ACCOUNT_CREATED: _("Compte créé"),
    Event.ACCOUNT_SUSPENDED: _("Compte suspendu"),
    Event.ACCOUNT_REACTIVATED: _("Compte réactivé"),
    Event.ACCOUNT_UPDATED: _("Compte modifié"),
    Event.DIRECTORY_IMPORTED: _("Annuaire importé"),
    Event.DIRECTORY_IMPORT_FAILED: _("Échec de l'import de l'annuaire"),
    Event.MESSAGE_SENT: _("Message envoyé"),
    Event.MESSAGE_DELIVERED_LOCALLY: _("Message déposé dans la boîte"),
    Event.MESSAGE_READ: _("Message lu"),
    Event.ATTACHMENT_DOWNLOADED: _("Pièce jointe téléchargée"),
    Event.MESSAGE_MOVED: _("Message déplacé"),
    Event.MESSAGE_DELETED: _("Message supprimé définitivement"),
    Event.FOLDER_CHANGED: _("Dossier modifié"),
    Event.DRAFT_DISCARDED: _("Brouillon abandonné"),
    Event.MAILBOX_MEMBERSHIP_CHANGED: _("Membres d'une boîte partagée modifiés"),
    Event.DOCUMENT_EXTRACTED: _("Document de santé extrait"),
    Event.TRUSTLIST_IMPORTED: _("Liste de confiance importée"),
    Event.TRUSTLIST_IMPORT_FAILED: _("Échec de l'import de la liste de confiance"),
    Event.DELIVERY_QUEUED: _("Remise programmée"),
    Event.DELIVERY_DELIVERED: _("Remis au serveur du destinataire"),
    Event.DELIVERY_DEFERRED: _("Remise différée"),
    Event.DELIVERY_FAILED: _("Échec de la remise"),
    Event.DELIVERY_READ: _("Accusé de lecture reçu"),
    Event.DELIVERY_REPORT_RECEIVED: _("Rapport de remise reçu"),
    Event.READ_RECEIPT_SENT: _("Accusé de lecture envoyé"),
    Event.INBOUND_ACCEPTED: _("Reçu par la passerelle de l'opérateur"),
    Event.INBOUND_INGESTED: _("Distribué dans les boîtes"),
    Event.INBOUND_QUARANTINED: _("Mis en quarantaine"),
    Event.INBOUND_REPLAYED: _("Distribution relancée"),
    Event.INBOUND_REJECTED: _("Refusé par la passerelle"),
    Event.ACTIVITY_VIEWED: _("Activité consultée"),
    Event.MESSAGE_TRACE_VIEWED: _("Traçabilité consultée"),
    Event.MESSAGE_TRACE_EXPORTED: _("Traçabilité exportée"),
    Event.AUDIT_SEARCHED_BY_STAFF: _("Recherche dans le journal par l'opérateur"),
    Event.AUDIT_EXPORTED_BY_STAFF: _("Export du journal par l'opérateur"),
    Event.SUSPICIOUS_LOGIN_NOTIFIED: _("Avis de connexion inhabituelle envoyé"),
    Event.AUDIT_VERIFIED: _("Intégrité du journal vérifiée"),
    Event.AUDIT_VERIFY_FAILED: _("Intégrité du journal en défaut"),
    Event.AUDIT_ANCHORED: _("Empreinte du journal ancrée"),
    Event.AUDIT_PURGED: _("Journal purgé (durée de conservation)"),
    Event.TRASH_PURGED: _("Corbeille vidée (durée de conservation)"),
    Event.SETTINGS_CHANGED_BY_STAFF: _("Réglage modifié par l'opérateur"),
    Event.NOTIFICATION_DEVICE_ADDED: _("Appareil de notification ajouté"),
    Event.NOTIFICATION_DEVICE_REMOVED: _("Appareil de notification retiré"),
    Event.NOTIFICATION_PREFERENCES_CHANGED: _("Préférences de notification modifiées"),
    Event.PATIENT_MESSAGE_SENT: _("Message envoyé à un patient"),
    Event.EXTERNAL_MESSAGE_SENT: _("Message envoyé hors de l'espace de confiance"),
    Event.EXTERNAL_RECIPIENT_REFUSED: _("Destinataire hors de l'espace de confiance refusé"),
    Event.PGP_KEY_IMPORTED: _("Clé OpenPGP importée"),
    Event.PGP_KEY_REMOVED: _("Clé OpenPGP retirée"),
    Event.PGP_MESSAGE_ENCRYPTED: _("Message chiffré (OpenPGP)"),
    Event.ENCRYPTED_ATTACHMENTS_SENT: _("Pièces jointes chiffrées envoyées"),
    Event.SECURE_LINK_CREATED: _("Lien sécurisé créé"),
    Event.SECURE_LINK_CODE_SENT: _("Code du lien sécurisé envoyé"),
    Event.SECURE_LINK_CODE_FAILED: _("Code du lien sécurisé refusé"),
    Event.SECURE_LINK_LOCKED: _("Lien sécurisé bloqué"),
    Event.SECURE_LINK_OPENED: _("Lien sécurisé consulté"),
    Event.SECURE_LINK_DOWNLOADED: _("Document téléchargé par le lien sécurisé"),
    Event.SECURE_LINK_REPLIED: _("Réponse reçue par le lien sécurisé"),
    Event.SECURE_LINK_REVOKED: _("Lien sécurisé révoqué"),
    Event.SECURE_LINK_EXPIRED: _("Lien sécurisé expiré"),
}


def event_label(event: int) -> str:
    """The French label of an event number; an unknown number is named by its number."""
    try:
        return str(EVENT_LABELS[Event(event)])
    except (ValueError, KeyError):
        return str(_("Événement n° %(number)s")) % {"number": event}


# --- My activity --------------------------------------------------------------------------------

ACTIVITY_GROUPS: dict[str, tuple[str, tuple[Event, ...]]] = {
    "connexions": (
        _("Connexions"),
        (
            Event.LOGIN_SUCCEEDED, Event.LOGIN_FAILED, Event.LOGIN_THROTTLED,
            Event.SECOND_FACTOR_SUCCEEDED, Event.SECOND_FACTOR_FAILED, Event.BACKUP_CODE_USED,
            Event.LOGOUT, Event.SESSION_EXPIRED, Event.SESSION_REVOKED,
        ),
    ),
    "securite": (
        _("Sécurité du compte"),
        (
            Event.PASSWORD_CHANGED, Event.PASSWORD_RESET_REQUESTED,
            Event.PASSWORD_RESET_COMPLETED, Event.SECOND_FACTOR_ENROLLED,
            Event.BACKUP_CODES_REGENERATED, Event.SECOND_FACTOR_RESET_BY_STAFF,
            Event.ACCOUNT_CREATED, Event.ACCOUNT_SUSPENDED, Event.ACCOUNT_REACTIVATED,
            Event.ACCOUNT_UPDATED, Event.SUSPICIOUS_LOGIN_NOTIFIED,
            Event.NOTIFICATION_DEVICE_ADDED, Event.NOTIFICATION_DEVICE_REMOVED,
            Event.NOTIFICATION_PREFERENCES_CHANGED,
        ),
    ),
    "messagerie": (
        _("Messagerie"),
        (
            Event.MESSAGE_SENT, Event.MESSAGE_READ, Event.ATTACHMENT_DOWNLOADED,
            Event.MESSAGE_MOVED, Event.MESSAGE_DELETED, Event.FOLDER_CHANGED,
            Event.DRAFT_DISCARDED, Event.READ_RECEIPT_SENT, Event.MESSAGE_TRACE_VIEWED,
            Event.MESSAGE_TRACE_EXPORTED, Event.PATIENT_MESSAGE_SENT,
            Event.EXTERNAL_MESSAGE_SENT, Event.EXTERNAL_RECIPIENT_REFUSED,
            Event.PGP_KEY_IMPORTED, Event.PGP_KEY_REMOVED, Event.SECURE_LINK_CREATED,
            Event.SECURE_LINK_REVOKED,
        ),
    ),
}  # fmt: skip
_GROUP_OF = {event: key for key, (_label, events) in ACTIVITY_GROUPS.items() for event in events}
# Shown in no group: they would only repeat what the user is doing right now, or are the
# delivery worker's rows (seen in a message's trace instead).
_HIDDEN_FROM_ACTIVITY = (Event.ACTIVITY_VIEWED, Event.DELIVERY_QUEUED, Event.DOCUMENT_EXTRACTED)
_LOGINS = (Event.LOGIN_SUCCEEDED,)
_FAILURES = (
    Event.LOGIN_FAILED,
    Event.LOGIN_THROTTLED,
    Event.SECOND_FACTOR_FAILED,
)


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def device_summary(user_agent: str) -> str:
    """ "Firefox sur Windows" from a user agent string; the raw string is never shown whole."""
    if not user_agent:
        return str(_("Appareil inconnu"))
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), "")
    if browser and system:
        return str(_("%(browser)s sur %(system)s")) % {"browser": browser, "system": system}
    return browser or system or user_agent[:40]


@dataclass
class ActivityPage:
    entries: list[AuditEvent]
    next_cursor: int | None


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def activity_for_user(
    *,
    user,
    group: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> ActivityPage:
    """The user's own activity, newest first, keyset-paginated on the row id (``before``):
    what they did (the ``(actor, -id)`` index), and what was done to their account by staff
    (the target index). Each entry gets ``label``, ``group``, ``device`` and ``suspicious``
    (a reason, or ""). At most three queries, whatever the page."""
    if group and group not in ACTIVITY_GROUPS:
        group = ""
    events = ACTIVITY_GROUPS[group][1] if group else None

    def narrowed(qs: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        qs = qs.exclude(event__in=_HIDDEN_FROM_ACTIVITY)
        if events is not None:
            qs = qs.filter(event__in=events)
        if date_from is not None:
            qs = qs.filter(created_at__gte=_day_start(date_from))
        if date_to is not None:
            qs = qs.filter(created_at__lt=_day_start(date_to + timedelta(days=1)))
        if before is not None:
            qs = qs.filter(id__lt=before)
        return qs.order_by("-id")[: limit + 1]

    own = list(narrowed(AuditEvent.objects.filter(actor=user)))
    # What staff did to the account (suspension, second factor reset…); the user's own rows
    # about themselves are already in ``own``.
    about = list(
        narrowed(
            AuditEvent.objects.filter(target_type="accounts.user", target_id=str(user.pk)).exclude(
                actor=user
            )
        )
    )
    rows = sorted({row.pk: row for row in own + about}.values(), key=lambda r: -r.pk)
    more = len(rows) > limit
    rows = rows[:limit]
    _mark(rows, user=user)
    return ActivityPage(entries=rows, next_cursor=rows[-1].pk if more and rows else None)


def _mark(rows: list[AuditEvent], *, user) -> None:
    """Labels, devices, and what looks suspicious: a successful login from a device or an
    address not seen in the 30 days before it, and failures several in a row."""
    for row in rows:
        row.label = event_label(row.event)
        row.group = _GROUP_OF.get(row.event, "")
        row.device = device_summary(row.user_agent)
        row.by_someone_else = row.actor_id != user.pk
        row.suspicious = ""
        row.message_link = (
            int(row.target_id)
            if row.target_type == "mailbox.message"
            and row.target_id.isdigit()
            and row.event != Event.MESSAGE_DELETED
            else None
        )
    logins = [row for row in rows if row.event in _LOGINS]
    if logins:
        first_login = _first_login_id(user.pk)
        oldest = min(row.created_at for row in logins)
        seen = list(
            AuditEvent.objects.filter(
                actor=user,
                event__in=_LOGINS,
                created_at__gte=oldest - SUSPICIOUS_LOOKBACK,
                id__lt=max(row.pk for row in logins),
            )
            .order_by("id")
            .values_list("id", "created_at", "ip", "user_agent")
        )
        for row in logins:
            window = [
                (ip, ua)
                for pk, when, ip, ua in seen
                if pk < row.pk and when >= row.created_at - SUSPICIOUS_LOOKBACK
            ]
            row.suspicious = _unusual(row, window=window, first=row.pk == first_login)
    # Failures in a row: rows are newest first; a run of failures not broken by a success.
    # Only another connection event breaks a run: mail actions in between do not.
    run: list[AuditEvent] = []
    for row in [*rows, None]:
        if row is not None and row.event in _FAILURES:
            run.append(row)
            continue
        if row is not None and row.group != "connexions":
            continue
        if len(run) >= FAILURES_IN_A_ROW:
            for failure in run:
                failure.suspicious = str(_("Plusieurs échecs à la suite"))
        run = []


def _first_login_id(user_id: int) -> int | None:
    return (
        AuditEvent.objects.filter(actor_id=user_id, event__in=_LOGINS)
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )


# Why a successful login looks unusual: a code (kept in the notice's audit row) and its label.
UNUSUAL_NEW_DEVICE = "new_device"
UNUSUAL_NEW_IP = "new_ip"
UNUSUAL_FAILURES = "failures"
UNUSUAL_LABELS = {
    UNUSUAL_NEW_DEVICE: _("Nouvel appareil"),
    UNUSUAL_NEW_IP: _("Nouvelle adresse IP"),
    UNUSUAL_FAILURES: _("Plusieurs échecs avant la connexion"),
}


def _unusual_code(row: AuditEvent, *, window: list[tuple[str | None, str]], first: bool) -> str:
    """Why a successful login looks unusual ("" if it does not): its device or its address was
    not seen in the logins of the 30 days before it. The account's first login is not."""
    if first:
        return ""
    if device_summary(row.user_agent) not in {device_summary(ua) for _ip, ua in window}:
        return UNUSUAL_NEW_DEVICE
    if canonical_ip(row.ip) not in {canonical_ip(ip) for ip, _ua in window}:
        return UNUSUAL_NEW_IP
    return ""


def _unusual(row: AuditEvent, *, window: list[tuple[str | None, str]], first: bool) -> str:
    code = _unusual_code(row, window=window, first=first)
    return str(UNUSUAL_LABELS[code]) if code else ""


def login_unusual_code(*, event: AuditEvent, until_id: int | None = None) -> str:
    """For one successful login (``LOGIN_SUCCEEDED``, the password step), why it looks unusual:
    ``UNUSUAL_NEW_DEVICE`` or ``UNUSUAL_NEW_IP`` (not seen in the logins of the 30 days
    before), ``UNUSUAL_FAILURES`` (several failed attempts since the previous successful
    login, up to ``until_id``, the row that completed this login: its code failures count), or
    "". Four queries at most."""
    if event.event not in _LOGINS or event.actor_id is None:
        return ""
    window = list(
        AuditEvent.objects.filter(
            actor_id=event.actor_id,
            event__in=_LOGINS,
            created_at__gte=event.created_at - SUSPICIOUS_LOOKBACK,
            id__lt=event.pk,
        ).values_list("ip", "user_agent")[:1000]
    )
    code = _unusual_code(event, window=window, first=_first_login_id(event.actor_id) == event.pk)
    if code:
        return code
    previous = (
        AuditEvent.objects.filter(actor_id=event.actor_id, event__in=_LOGINS, id__lt=event.pk)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    failures = AuditEvent.objects.filter(
        actor_id=event.actor_id,
        event__in=_FAILURES,
        created_at__gte=event.created_at - SUSPICIOUS_LOOKBACK,
        id__gt=previous or 0,
        id__lt=max(until_id or 0, event.pk),
    )
    return UNUSUAL_FAILURES if failures.count() >= FAILURES_IN_A_ROW else ""


def login_unusual_reason(*, event: AuditEvent, until_id: int | None = None) -> str:
    """The French label of ``login_unusual_code``, or ""."""
    code = login_unusual_code(event=event, until_id=until_id)
    return str(UNUSUAL_LABELS[code]) if code else ""


# --- Message trace ------------------------------------------------------------------------------


@dataclass
class Trace:
    message: object
    copies: list
    deliveries: list
    events: list[AuditEvent]
    actors: dict[int, str] = field(default_factory=dict)

    @property
    def message_ids(self) -> list[int]:
        return [copy.pk for copy in self.copies]


def _targets(type_: str, ids: Iterable[int]) -> Q | None:
    ids = [str(pk) for pk in ids]
    return Q(target_type=type_, target_id__in=ids) if ids else None


def _secure_link_ids(message_ids: list[int]) -> list[int]:
    """The secure links (recipients outside the trust space) made for these copies: their
    views, codes and downloads belong to the message's trace."""
    from django.apps import apps

    if not message_ids or not apps.is_installed("apps.securelink"):
        return []
    link_model = apps.get_model("securelink", "SecureLink")
    return list(link_model.objects.filter(message_id__in=message_ids).values_list("pk", flat=True))


def message_trace(*, user, message_id: int) -> Trace:
    """Everything the trail holds about a message the user may open, in chain order: its
    copies in the mailboxes the user may open (same Message-ID), their attachments, the
    outbound deliveries of each recipient and the inbound gateway rows that brought it. A
    message the user may not open is a 404 (the mailbox selectors decide)."""
    from apps.delivery.models import OutboundDelivery
    from apps.gateway.models import InboundDelivery
    from apps.mailbox import selectors as mailbox_selectors
    from apps.mailbox.models import Attachment, Message

    message = mailbox_selectors.message_get_for_user(user=user, message_id=message_id)
    copies = list(
        Message.objects.filter(
            message_id=message.message_id,
            mailbox__in=mailbox_selectors.mailboxes_for_user(user=user),
        )
        .select_related("mailbox", "folder")
        .only("id", "mailbox__address", "mailbox__display_name", "folder__kind",
              "folder__name", "message_id", "sent_by_id")
        .order_by("id")
    )  # fmt: skip
    copy_ids = [copy.pk for copy in copies]
    deliveries = list(
        OutboundDelivery.objects.filter(message_id__in=copy_ids)
        .defer("raw")
        .order_by("recipient", "id")
    )
    attachment_ids = Attachment.objects.filter(message_id__in=copy_ids).values_list("id", flat=True)
    inbound_ids = (
        InboundDelivery.objects.filter(message_id__in=copy_ids)
        .values_list("inbound_id", flat=True)
        .distinct()
    )
    condition = Q(pk__in=[])
    for part in (
        _targets("mailbox.message", copy_ids),
        _targets("securelink.securelink", _secure_link_ids(copy_ids)),
        _targets("delivery.outbounddelivery", [row.pk for row in deliveries]),
        _targets("mailbox.attachment", list(attachment_ids)),
        _targets("gateway.inboundmessage", list(inbound_ids)),
    ):
        if part is not None:
            condition |= part
    # Chain order; a row not sealed yet (the views seal first) comes last, in recording order.
    events = list(
        AuditEvent.objects.filter(condition)
        .select_related("link")
        .order_by(F("link__seq").asc(nulls_last=True), "id")
    )
    by_delivery = {str(row.pk): row for row in deliveries}
    for row in events:
        row.label = event_label(row.event)
        row.delivery = (
            by_delivery.get(row.target_id) if row.target_type == "delivery.outbounddelivery"
            else None
        )  # fmt: skip
    actor_ids = {row.actor_id for row in events if row.actor_id}
    actors = {
        pk: f"{first} {last}".strip() or email
        for pk, first, last, email in get_user_model()
        .objects.filter(pk__in=actor_ids)
        .values_list("pk", "first_name", "last_name", "email")
    }
    for row in events:
        row.actor_name = actors.get(row.actor_id) or row.actor_label or ""
    return Trace(message=message, copies=copies, deliveries=deliveries, events=events,
                 actors=actors)  # fmt: skip


# --- Staff search -------------------------------------------------------------------------------

_MSGID_BRACKETS = re.compile(r"^<|>$")


def staff_search(
    *,
    user: str = "",
    mailbox: str = "",
    message_id: str = "",
    event: int | None = None,
    ip: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[AuditEvent]:
    """The staff's search over the whole trail, newest first. ``user``: an account's address
    (what they did and what was done to their account, or a failed login typed with that
    address); ``mailbox``: an address hosted here (rows about it, or naming it in their
    detail); ``message_id``: every copy, attachment, outbound and inbound row of that
    Message-ID. Callers check that the user is staff (the admin site does)."""
    from apps.delivery.models import OutboundDelivery
    from apps.gateway.models import InboundMessage
    from apps.mailbox.models import Attachment, Mailbox, Message

    qs = AuditEvent.objects.all()
    if user:
        email = user.strip().lower()
        ids = list(get_user_model().objects.filter(email=email).values_list("pk", flat=True))
        qs = qs.filter(
            Q(actor_id__in=ids)
            | Q(actor_label=email)
            | Q(target_type="accounts.user", target_id__in=[str(pk) for pk in ids])
        )
    if mailbox:
        box = Mailbox.objects.filter(address=mailbox.strip().lower()).first()
        if box is None:
            return qs.none()
        qs = qs.filter(
            Q(target_type="mailbox.mailbox", target_id=str(box.pk)) | Q(detail__mailbox=box.pk)
        )
    if message_id:
        msgid = _MSGID_BRACKETS.sub("", message_id.strip())
        copies = list(Message.objects.filter(message_id=msgid).values_list("pk", flat=True))
        condition = Q(pk__in=[])
        for part in (
            _targets("mailbox.message", copies),
            _targets("mailbox.attachment",
                     Attachment.objects.filter(message_id__in=copies).values_list("pk", flat=True)),
            _targets("delivery.outbounddelivery",
                     OutboundDelivery.objects.filter(msgid=msgid).values_list("pk", flat=True)),
            _targets("gateway.inboundmessage",
                     InboundMessage.objects.filter(message_id__in=[msgid, f"<{msgid}>"])
                     .values_list("pk", flat=True)),
        ):  # fmt: skip
            if part is not None:
                condition |= part
        qs = qs.filter(condition)
    if event is not None:
        qs = qs.filter(event=event)
    if ip:
        qs = qs.filter(ip=canonical_ip(ip.strip()))
    if date_from is not None:
        qs = qs.filter(created_at__gte=_day_start(date_from))
    if date_to is not None:
        qs = qs.filter(created_at__lt=_day_start(date_to + timedelta(days=1)))
    return qs.select_related("link").order_by("-id")


def audit_events_for_user(*, user, limit: int = 50) -> QuerySet[AuditEvent]:
    """The events ``user`` performed, newest first."""
    return AuditEvent.objects.filter(actor=user).order_by("-id")[:limit]
