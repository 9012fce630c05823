"""Secure links: creating one (with its neutral notice e-mail and its code), the recipient's
code check, reads, downloads and replies, and the sender's revoke / new code.

The recipient is not a user: their actions are audited with no actor and the recipient's address
as label. Codes and tokens never reach the audit trail, the logs or the broker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext as _

from apps.audit.events import Event
from apps.audit.services import record
from apps.core.exceptions import ApplicationError
from apps.core.request_meta import RequestMeta
from apps.ingestion.build import (
    OutgoingAttachment,
    build_message,
    make_message_id,
    reply_subject,
)
from apps.mailbox.models import Attachment, Message
from apps.notifications.sms import SmsError, normalise_phone, redact_phone, sms_send
from apps.securelink.models import (
    AccessKind,
    CodeChannel,
    CodeFailure,
    SecureLink,
    SecureLinkAccess,
)

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32
CODE_DIGITS = 6
VIA_HEADER = "X-Mssweb-Via"  # on replies filed into the sender's inbox


class SecureLinkError(ApplicationError):
    pass


class LinkUnavailable(SecureLinkError):
    """Revoked, expired or locked: ``status`` says which."""

    def __init__(self, message: str, *, status: str) -> None:
        super().__init__(message)
        self.status = status


class CodeRefused(SecureLinkError):
    pass


class TooManyAttempts(SecureLinkError):
    pass


@dataclass
class SecureLinkResult:
    link: SecureLink
    notice_raw: bytes  # the neutral notice e-mail (RFC 5322 bytes, CRLF) to send to the recipient
    code_for_sender: str | None  # the one-time code to read aloud, when it is not sent by SMS


@dataclass
class ReplyFile:
    filename: str
    content_type: str
    data: bytes


# --- Secrets -----------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _code_hmac(salt: str, code: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"securelink:{salt}:{code}".encode(), hashlib.sha256).hexdigest()


def _new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def _set_code(link: SecureLink, code: str) -> None:
    link.code_salt = secrets.token_hex(16)
    link.code_hash = _code_hmac(link.code_salt, code)


def code_matches(link: SecureLink, code: str) -> bool:
    code = "".join(code.split())
    return hmac.compare_digest(_code_hmac(link.code_salt, code), link.code_hash)


def _reveal_key() -> bytes:
    return hashlib.sha256(b"mssweb.securelink.reveal:" + settings.SECRET_KEY.encode()).digest()


def _reveal_seal(code: str, link_pk: int) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_reveal_key()).encrypt(nonce, code.encode(), str(link_pk).encode())
    return base64.b64encode(nonce + sealed).decode()


def _reveal_open(value: str, link_pk: int) -> str | None:
    try:
        data = base64.b64decode(value)
        return AESGCM(_reveal_key()).decrypt(data[:12], data[12:], str(link_pk).encode()).decode()
    except (ValueError, InvalidTag):
        return None  # the secret key changed: the sender asks for a new code


def link_url(token: str) -> str:
    return settings.SITE_URL + reverse("securelink:open", args=[token])


# --- The notice e-mail -------------------------------------------------------------------------


def _notice_from() -> str:
    configured = settings.SECURE_LINK_NOTICE_FROM
    if configured:
        return configured
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"ne-pas-repondre@{host}"


def _practice_of(message: Message) -> str:
    from apps.directory.selectors import mailbox_in_directory

    card = mailbox_in_directory(address=message.mailbox.address) or {}
    return card.get("structure_name") or ""


def notice_build(*, link: SecureLink, token: str, sender_name: str, practice: str) -> bytes:
    """The neutral notice: who wrote (name and practice), the link, how the code comes, until
    when. Never the body, the attachments' names, nor the subject unless the sender allowed it."""
    message = link.message
    with translation.override(settings.LANGUAGE_CODE):
        who = (
            _("%(name)s (%(practice)s)") % {"name": sender_name, "practice": practice}
            if practice
            else sender_name
        )
        if link.code_channel == CodeChannel.SMS:
            how = _("Un code vous sera communiqué par SMS.")
        else:
            how = _("Un code vous sera communiqué par votre correspondant (de vive voix ou par "
                    "téléphone).")  # fmt: skip
        until = date_format(localtime(link.expires_at), "j F Y")
        lines = [
            _("Bonjour,"),
            "",
            _("%(who)s vous a adressé un message sécurisé.") % {"who": who},
        ]
        if link.include_subject and message.subject:
            lines += ["", _("Objet : %(subject)s") % {"subject": message.subject}]
        lines += [
            "",
            _("Pour le lire, ouvrez ce lien :"),
            link_url(token),
            "",
            how,
            _("Ce lien est personnel et valable jusqu'au %(date)s.") % {"date": until},
            "",
            _(
                "Par sécurité, cet e-mail ne contient aucune information médicale. Ne lui "
                "répondez pas : pour répondre, utilisez le bouton « Répondre » de la page "
                "sécurisée."
            ),
            "",
            "-- ",
            _("%(site)s — messagerie sécurisée de santé") % {"site": settings.SITE_NAME},
        ]
        subject = _("Message sécurisé de %(name)s") % {"name": sender_name}
        if link.include_subject and message.subject:
            subject = f"{subject} : {message.subject}"
        sender = _("%(name)s via %(site)s") % {"name": sender_name, "site": settings.SITE_NAME}
    notice_from = _notice_from()
    return build_message(
        from_=(sender, notice_from),
        to=[("", link.address)],
        subject=subject,
        text="\n".join(lines) + "\n",
        message_id=make_message_id(notice_from.rpartition("@")[2]),
        date=timezone.now(),
        extra_headers={"Auto-Submitted": "auto-generated"},
    )


# --- Creating a link, codes --------------------------------------------------------------------


def _sms_text(code: str) -> str:
    with translation.override(settings.LANGUAGE_CODE):
        return _(
            "%(site)s : votre code d'accès au message sécurisé est %(code)s. Ne le communiquez "
            "à personne."
        ) % {"site": settings.SITE_NAME, "code": code}


def _code_deliver(
    *, link: SecureLink, code: str, actor, meta: RequestMeta | None, seal: bool
) -> str | None:
    """Send ``code`` by SMS after commit (the SMS is not taken back if the transaction fails:
    send only what is saved), or return it for the sender to read aloud — and with ``seal``,
    keep it encrypted until the sender's message page has shown it once."""
    now = timezone.now()
    if link.code_channel == CodeChannel.SMS:
        link.code_reveal = ""
        transaction.on_commit(lambda: _sms_send_code(link_pk=link.pk, phone=link.phone, code=code))
        return None
    link.code_reveal = _reveal_seal(code, link.pk) if seal else ""
    link.code_sent_at = now
    record(
        event=Event.SECURE_LINK_CODE_SENT, actor=actor, target=link, meta=meta,
        extra={"channel": link.code_channel},
    )  # fmt: skip
    return code


def _sms_send_code(*, link_pk: int, phone: str, code: str) -> None:
    try:
        sms_send(phone=phone, text=_sms_text(code))
    except SmsError:
        logger.warning(
            "secure link code sms failed",
            extra={"link_pk": link_pk, "phone": redact_phone(phone)},
        )
        return
    with transaction.atomic():
        SecureLink.objects.filter(pk=link_pk).update(code_sent_at=timezone.now())
        record(
            event=Event.SECURE_LINK_CODE_SENT, target=("securelink.securelink", link_pk),
            extra={"channel": CodeChannel.SMS},
        )  # fmt: skip


@transaction.atomic
def secure_link_create(
    *,
    user,
    message: Message,
    address: str,
    phone: str = "",
    meta: RequestMeta | None = None,
    include_subject: bool = False,
) -> SecureLinkResult:
    """A link for ``address`` to read ``message`` (the sender's copy) on this site.

    With ``phone`` (a French mobile) the code goes by SMS once the transaction commits;
    otherwise it is returned for the sender to read aloud (and shown once on their message
    page). The caller sends ``notice_raw`` to ``address`` by ordinary e-mail."""
    address = address.strip().lower()
    channel = CodeChannel.ORAL
    if phone.strip():
        normalised = normalise_phone(phone)
        if normalised is None:
            raise SecureLinkError(
                _("Numéro de mobile invalide pour l'envoi du code par SMS : %(phone)s")
                % {"phone": phone.strip()[:30]}
            )
        phone, channel = normalised, CodeChannel.SMS
    now = timezone.now()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    code = _new_code()
    link = SecureLink(
        message=message,
        created_by=user,
        address=address[:254],
        token_hash=token_hash(token),
        code_channel=channel,
        phone=phone if channel == CodeChannel.SMS else "",
        include_subject=include_subject,
        created_at=now,
        expires_at=now + timedelta(days=settings.SECURE_LINK_LIFETIME_DAYS),
        replies_left=settings.SECURE_LINK_MAX_REPLIES,
    )
    _set_code(link, code)
    link.save()
    record(
        event=Event.SECURE_LINK_CREATED, actor=user, target=link, meta=meta,
        extra={"message": message.pk, "channel": channel, "subject_shown": include_subject},
    )  # fmt: skip
    # The caller shows ``code_for_sender`` once, right after sending (``apps.external``).
    code_for_sender = _code_deliver(link=link, code=code, actor=user, meta=meta, seal=False)
    link.save(update_fields=["code_reveal", "code_sent_at"])
    sender_name = (user.display_name if user is not None else "") or message.from_name
    notice = notice_build(
        link=link, token=token, sender_name=sender_name or message.from_address,
        practice=_practice_of(message),
    )  # fmt: skip
    logger.info("secure link created", extra={"link_pk": link.pk, "message_pk": message.pk})
    return SecureLinkResult(link=link, notice_raw=notice, code_for_sender=code_for_sender)


@transaction.atomic
def secure_link_new_code(*, user, link: SecureLink, meta: RequestMeta | None = None) -> str | None:
    """A new code replaces the old one and unlocks a locked link (the sender vouches for the
    recipient). Returns it when the sender reads it aloud; by SMS, sends it after commit."""
    link = SecureLink.objects.select_for_update().get(pk=link.pk)
    if link.revoked_at or link.is_expired:
        raise SecureLinkError(_("Ce lien n'est plus actif : un nouveau code ne servirait à rien."))
    code = _new_code()
    _set_code(link, code)
    unlocked = link.locked_at is not None
    link.failed_attempts = 0
    link.locked_at = None
    result = _code_deliver(link=link, code=code, actor=user, meta=meta, seal=True)
    link.save(
        update_fields=["code_salt", "code_hash", "failed_attempts", "locked_at", "code_reveal",
                       "code_sent_at"]
    )  # fmt: skip
    if unlocked:
        logger.info("secure link unlocked by a new code", extra={"link_pk": link.pk})
    return result


@transaction.atomic
def secure_link_revoke(*, user, link: SecureLink, meta: RequestMeta | None = None) -> None:
    updated = SecureLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), code_reveal=""
    )
    if updated:
        record(event=Event.SECURE_LINK_REVOKED, actor=user, target=link, meta=meta)
    link.refresh_from_db()


def secure_link_mark_expired(*, link: SecureLink) -> None:
    """Audit the expiry of ``link`` once (from the sweep, or when someone opens it late)."""
    with transaction.atomic():
        updated = SecureLink.objects.filter(
            pk=link.pk, expired_at__isnull=True, expires_at__lte=timezone.now()
        ).update(expired_at=timezone.now(), code_reveal="")
        if updated:
            record(event=Event.SECURE_LINK_EXPIRED, target=link)


def secure_links_expire_sweep(*, limit: int = 500) -> int:
    due = SecureLink.objects.filter(expired_at__isnull=True, expires_at__lte=timezone.now())
    links = list(due.order_by("expires_at")[:limit])
    for link in links:
        secure_link_mark_expired(link=link)
    return len(links)


def secure_links_panel(*, user, messages: Iterable[Message]) -> list[SecureLink]:
    """The secure links of ``messages`` for the sender's message page, each with its accesses;
    a new code to read aloud that was never shown is shown now, once (``code_shown``)."""
    from apps.securelink.selectors import secure_links_for_messages

    links = secure_links_for_messages(user=user, messages=messages)
    pending = [link for link in links if link.code_reveal]
    for link in pending:
        link.code_shown = _reveal_open(link.code_reveal, link.pk)
    if pending:
        SecureLink.objects.filter(pk__in=[link.pk for link in pending]).update(code_reveal="")
    return links


# --- The recipient's side ----------------------------------------------------------------------


def _label(link: SecureLink) -> str:
    return link.address


def link_check_available(*, link: SecureLink) -> None:
    """Raise ``LinkUnavailable`` (with a clear French message) unless the link may be used."""
    if link.revoked_at:
        raise LinkUnavailable(
            _("Ce lien a été révoqué par votre correspondant : contactez-le si besoin."),
            status="revoked",
        )
    if link.is_expired:
        secure_link_mark_expired(link=link)
        raise LinkUnavailable(
            _("Ce lien a expiré : demandez à votre correspondant de vous renvoyer le message."),
            status="expired",
        )
    if link.locked_at:
        raise LinkUnavailable(
            _("Ce lien est verrouillé après trop de codes erronés : demandez un nouveau code à "
              "votre correspondant."),
            status="locked",
        )  # fmt: skip


def _ip_throttled(ip: str | None) -> bool:
    if not ip:
        return False
    since = timezone.now() - settings.THROTTLE_WINDOW
    recent = CodeFailure.objects.filter(ip=ip, created_at__gte=since).count()
    return recent >= settings.SECURE_LINK_MAX_ATTEMPTS_PER_IP


def secure_link_verify_code(
    *, link: SecureLink, code: str, meta: RequestMeta | None = None
) -> None:
    """Check ``code``; on success the link is opened (audited), on failure counted, and locked
    after ``SECURE_LINK_MAX_ATTEMPTS`` wrong codes. Raises ``CodeRefused``, ``LinkUnavailable``
    or ``TooManyAttempts`` (this address tried too many codes lately, on any link)."""
    ip = meta.ip if meta else None
    link_check_available(link=link)
    if _ip_throttled(ip):
        raise TooManyAttempts(
            _("Trop d'essais depuis votre connexion : réessayez dans %(minutes)d minutes.")
            % {"minutes": int(settings.THROTTLE_WINDOW.total_seconds() // 60)}
        )
    with transaction.atomic():
        locked = SecureLink.objects.select_for_update().get(pk=link.pk)
        link_check_available(link=locked)
        if code_matches(locked, code):
            _opened(link=locked, meta=meta)
            link.__dict__.update(
                {f: getattr(locked, f) for f in ("first_opened_at", "last_opened_at",
                                                 "failed_attempts")}
            )  # fmt: skip
            return
        locked.failed_attempts += 1
        CodeFailure.objects.create(link=locked, ip=ip)
        fields = ["failed_attempts"]
        left = settings.SECURE_LINK_MAX_ATTEMPTS - locked.failed_attempts
        if left <= 0:
            locked.locked_at = timezone.now()
            fields.append("locked_at")
        locked.save(update_fields=fields)
        record(
            event=Event.SECURE_LINK_CODE_FAILED, target=locked, meta=meta,
            actor_label=_label(locked), extra={"attempts": locked.failed_attempts},
        )  # fmt: skip
        if left <= 0:
            record(event=Event.SECURE_LINK_LOCKED, target=locked, meta=meta,
                   actor_label=_label(locked))  # fmt: skip
    if left <= 0:
        link.locked_at = locked.locked_at
        raise LinkUnavailable(
            _("Code erroné. Ce lien est maintenant verrouillé : demandez un nouveau code à "
              "votre correspondant."),
            status="locked",
        )  # fmt: skip
    raise CodeRefused(
        _("Code erroné. Il vous reste %(left)d essai(s) avant le verrouillage du lien.")
        % {"left": left}
    )


def _opened(*, link: SecureLink, meta: RequestMeta | None) -> None:
    now = timezone.now()
    first = link.first_opened_at is None
    link.first_opened_at = link.first_opened_at or now
    link.last_opened_at = now
    link.failed_attempts = 0
    link.save(update_fields=["first_opened_at", "last_opened_at", "failed_attempts"])
    SecureLinkAccess.objects.create(link=link, kind=AccessKind.OPENED, at=now)
    record(
        event=Event.SECURE_LINK_OPENED, target=link, meta=meta, actor_label=_label(link),
        extra={"first": first, "message": link.message_id},
    )  # fmt: skip


@transaction.atomic
def secure_link_download_record(
    *, link: SecureLink, attachment: Attachment, meta: RequestMeta | None = None
) -> None:
    SecureLinkAccess.objects.create(
        link=link, kind=AccessKind.DOWNLOADED, attachment=attachment,
        filename=attachment.filename[:255],
    )  # fmt: skip
    record(
        event=Event.SECURE_LINK_DOWNLOADED, target=link, meta=meta, actor_label=_label(link),
        extra={"attachment": attachment.pk},
    )  # fmt: skip


def secure_link_reply(
    *, link: SecureLink, text: str, files: list[ReplyFile] = (), meta: RequestMeta | None = None
) -> Message:
    """File the recipient's reply into the sender's inbox, threaded under the message (its
    ``From`` is the recipient's address, ``X-Mssweb-Via: lien-securise`` says how it came)."""
    from apps.mailbox.services import message_deliver_raw

    text = text.strip()
    if not text:
        raise SecureLinkError(_("Écrivez votre réponse."))
    if len(text) > settings.SECURE_LINK_REPLY_MAX_CHARS:
        raise SecureLinkError(_("Votre réponse est trop longue."))
    if len(files) > settings.SECURE_LINK_REPLY_MAX_FILES:
        raise SecureLinkError(
            _("Au plus %(count)d pièces jointes.") % {"count": settings.SECURE_LINK_REPLY_MAX_FILES}
        )
    if sum(len(f.data) for f in files) > settings.SECURE_LINK_REPLY_MAX_SIZE:
        raise SecureLinkError(
            _("Les pièces jointes dépassent %(mb)d Mo au total.")
            % {"mb": settings.SECURE_LINK_REPLY_MAX_SIZE // 1_000_000}
        )
    original = link.message
    mailbox = original.mailbox
    raw = build_message(
        from_=("", link.address),
        to=[(mailbox.display_name, mailbox.address)],
        subject=reply_subject(original.subject or _("Message sécurisé")),
        text=text + "\n",
        attachments=[OutgoingAttachment(f.filename, f.content_type, f.data) for f in files],
        message_id=make_message_id(mailbox.address.rpartition("@")[2]),
        in_reply_to=original.message_id,
        references=[*original.references.split(), original.message_id][-20:],
        date=timezone.now(),
        extra_headers={VIA_HEADER: "lien-securise"},
    )
    with transaction.atomic():
        taken = SecureLink.objects.filter(pk=link.pk, replies_left__gt=0).update(
            replies_left=F("replies_left") - 1
        )
        if not taken:
            raise SecureLinkError(_("Vous avez utilisé toutes les réponses permises par ce lien."))
        reply = message_deliver_raw(mailbox=mailbox, raw=raw)
        SecureLinkAccess.objects.create(link=link, kind=AccessKind.REPLIED)
        record(
            event=Event.SECURE_LINK_REPLIED, target=link, meta=meta, actor_label=_label(link),
            extra={"reply": reply.pk, "attachments": len(files)},
        )  # fmt: skip
    link.refresh_from_db(fields=["replies_left"])
    logger.info("secure link reply filed", extra={"link_pk": link.pk, "message_pk": reply.pk})
    return reply


def reply_file_from_upload(upload) -> ReplyFile:
    """An uploaded file (already size-checked by the form) as a reply attachment."""
    upload.seek(0)
    return ReplyFile(
        filename=upload.name,
        content_type=upload.content_type or "application/octet-stream",
        data=upload.read(),
    )
