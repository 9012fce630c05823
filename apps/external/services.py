"""Recipients outside the MSSanté trust space: the operator's policy, the protection of each
external recipient (OpenPGP, secure link, encrypted attachments), and the transport of the
ordinary e-mail that reaches them.

Nothing leaves in clear: an external recipient gets either a PGP/MIME message encrypted to their
key, or a neutral notice (the sender's name and practice, the subject only when the sender says
it is harmless) with a secure link, or the attachments encrypted under a passphrase the sender
transmits by another channel.
"""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.attachments.services import blob_store
from apps.audit.events import Event
from apps.audit.services import record
from apps.core.exceptions import ApplicationError
from apps.core.request_meta import RequestMeta
from apps.delivery.models import OutboundDelivery
from apps.directory.models import Contact
from apps.external import openpgp
from apps.external.mime import (
    build_encrypted_files,
    build_pgp_mime,
    encrypted_file_names,
    encrypted_files_notice,
    outer_subject,
)
from apps.external.models import ContactKey
from apps.external.selectors import contact_keys_for
from apps.ingestion.build import make_message_id
from apps.mailbox.models import Message
from apps.notifications.sms import SmsError, normalise_phone, sms_send
from apps.trustlist.routing import Route, domain_of

logger = logging.getLogger(__name__)


class ExternalError(ApplicationError):
    """A send outside the trust space cannot go ahead as asked (French ``message``)."""


def _enqueue(ids: list[int]) -> None:
    from apps.delivery.tasks import deliver

    deliver.delay(ids)


def _message_id_of(raw: bytes) -> str:
    headers = BytesHeaderParser(policy=default_policy).parsebytes(raw[:65536])
    value = str(headers.get("Message-ID", "") or "").strip()
    return value.strip("<>")[:255]


@transaction.atomic
def external_send_raw(
    *,
    user,
    message: Message,
    address: str,
    raw: bytes,
    meta: RequestMeta | None = None,
    envelope_from: str = "",
) -> OutboundDelivery:
    """Queue the ordinary e-mail ``raw`` (RFC 5322 bytes, ready to send) to the external
    ``address``, on behalf of the mailbox of ``message`` (the sender's copy it belongs to).

    The outbox row has its own encrypted copy of ``raw`` and the route ``external``: the
    delivery worker sends it without the trust-list check, but over verified TLS (see
    ``EXTERNAL_REQUIRE_TLS``). The sender sees its status with the message's other recipients.
    ``envelope_from`` (default: the mailbox's address) is the SMTP ``MAIL FROM``, e.g. the
    address of a notice's ``From`` for SPF alignment. The delivery task is enqueued when the
    caller's transaction commits."""
    address = address.strip().lower()
    mailbox = message.mailbox
    now = timezone.now()
    blob = blob_store(source=io.BytesIO(raw))
    row = OutboundDelivery.objects.create(
        message=message,
        mailbox=mailbox,
        msgid=_message_id_of(raw) or message.message_id,
        raw=blob,
        envelope_from=envelope_from or mailbox.address,
        recipient=address,
        domain=domain_of(address),
        route=Route.EXTERNAL,
        next_attempt_at=now,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.DELIVERY_MAX_LIFETIME),
    )
    record(
        event=Event.DELIVERY_QUEUED, actor=user, target=row, meta=meta,
        extra={"message": message.pk, "domain": row.domain, "route": row.route},
    )  # fmt: skip
    transaction.on_commit(lambda: _enqueue([row.pk]))
    return row


# --- Keys on contacts -------------------------------------------------------------------------


@transaction.atomic
def contact_key_import(
    *, user, contact: Contact, data: bytes | str, meta: RequestMeta | None = None
) -> ContactKey:
    """Check (``openpgp.key_inspect``: not expired, not revoked, able to encrypt, a user ID for
    the contact's address) and import a public key on one of ``user``'s contacts."""
    if contact.owner_id != user.pk:
        raise ExternalError(_("Ce contact n'est pas le vôtre."))
    info = openpgp.key_import(data, email=contact.email)
    key, created = ContactKey.objects.update_or_create(
        contact=contact,
        fingerprint=info.fingerprint,
        defaults={
            "uids": ", ".join(info.uids)[:500],
            "key_created_at": info.created_at,
            "expires_at": info.expires_at,
        },
    )
    record(
        event=Event.PGP_KEY_IMPORTED, actor=user, target=key, meta=meta,
        extra={"contact": contact.pk, "fingerprint": info.fingerprint, "new": created},
    )  # fmt: skip
    return key


@transaction.atomic
def contact_key_remove(*, user, key: ContactKey, meta: RequestMeta | None = None) -> None:
    """Remove a key from a contact; from the GnuPG home too when no contact uses it any more."""
    if key.contact.owner_id != user.pk:
        raise ExternalError(_("Cette clé n'est pas sur l'un de vos contacts."))
    fingerprint, contact_id = key.fingerprint, key.contact_id
    record(
        event=Event.PGP_KEY_REMOVED, actor=user, target=key, meta=meta,
        extra={"contact": contact_id, "fingerprint": fingerprint},
    )  # fmt: skip
    key.delete()
    if not ContactKey.objects.filter(fingerprint=fingerprint).exists():
        transaction.on_commit(lambda: _forget(fingerprint))


def _forget(fingerprint: str) -> None:
    try:
        openpgp.key_forget(fingerprint)
    except openpgp.GpgError:
        logger.warning("openpgp: key not removed", extra={"fingerprint": fingerprint})


# --- Sending to recipients outside the trust space --------------------------------------------


class Protection(models.TextChoices):
    OPENPGP = "openpgp", gettext_lazy("chiffré OpenPGP (clé du destinataire)")
    LINK = "link", gettext_lazy("lien sécurisé")
    FILES = "files", gettext_lazy("pièces jointes chiffrées")


@dataclass(frozen=True)
class ExternalOptions:
    """The sender's choices on the compose page for recipients outside the trust space."""

    protection: str = Protection.LINK  # for recipients without a key: LINK or FILES
    subject_in_clear: bool = False  # "l'objet peut être envoyé en clair"
    # A French mobile: the secure link's code, or the encrypted attachments' passphrase, goes
    # there by SMS (one external recipient without a key only).
    phone: str = ""
    # The external addresses the sender was shown before sending (warning, choices).
    confirmed: frozenset[str] = frozenset()


@dataclass
class Planned:
    """One external recipient, prepared before the sending transaction (the slow part:
    encryption)."""

    address: str
    protection: str
    fingerprint: str = ""
    raw: bytes = b""
    passphrase: str = ""
    files: int = 0


@dataclass
class ExternalSent:
    """What the sender must see once after sending: a passphrase or a code to transmit."""

    address: str
    protection: str
    fingerprint: str = ""
    passphrase: str = ""
    code: str = ""
    sms: bool = False


def external_policy_refuse(
    *, user, addresses: Sequence[str], meta: RequestMeta | None = None
) -> None:
    """Audit a send refused by the ``refuse`` policy (the caller raises the refusal)."""
    with transaction.atomic():
        for address in addresses:
            record(
                event=Event.EXTERNAL_RECIPIENT_REFUSED, actor=user, meta=meta,
                extra={"domain": domain_of(address), "policy": "refuse"},
            )  # fmt: skip


def sender_name(*, user, mailbox) -> str:
    return getattr(user, "display_name", "") or mailbox.display_name or mailbox.address


def sender_label(*, user, mailbox) -> str:
    """``"Dr Claire Morel (Cabinet du Parc)"``: the sender's name and practice, all the notices
    say about the message."""
    name = sender_name(user=user, mailbox=mailbox)
    practice = mailbox.display_name if mailbox.display_name not in ("", name) else ""
    practice = practice or str(getattr(user, "profession_label", "") or "")
    return f"{name} ({practice})" if practice else name


_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: easy to read aloud


def passphrase_new() -> str:
    """20 random characters (100 bits) in groups of four: ``K7QD-3MWP-…``."""
    chars = "".join(secrets.choice(_ALPHABET) for _i in range(20))
    return "-".join(chars[i : i + 4] for i in range(0, 20, 4))


def external_prepare(
    *,
    user,
    mailbox,
    addresses: Sequence[str],
    options: ExternalOptions,
    subject: str,
    text: str,
    original_raw: bytes,
    attachments: Sequence[tuple[str, Callable]],
    date: datetime,
) -> list[Planned]:
    """Choose each external recipient's protection and do the encryption, before the sending
    transaction: OpenPGP when the sender's contact has a usable key, else the sender's choice
    (secure link, made in the transaction; or encrypted attachments, made here)."""
    if options.protection not in (Protection.LINK, Protection.FILES):
        raise ExternalError(_("Choisissez comment protéger l'envoi hors espace de confiance."))
    keys = contact_keys_for(user=user, addresses=addresses)
    sender = sender_label(user=user, mailbox=mailbox)
    domain = mailbox.address.rpartition("@")[2]
    outer = outer_subject(
        sender=sender_name(user=user, mailbox=mailbox),
        subject=subject,
        subject_in_clear=options.subject_in_clear,
    )
    from_ = (mailbox.display_name, mailbox.address)
    plaintexts: list[tuple[str, bytes]] | None = None
    planned = []
    for address in addresses:
        key = keys.get(address)
        if key is not None and openpgp.key_usable(key.fingerprint):
            raw = build_pgp_mime(
                original_raw=original_raw,
                encrypt=lambda data, fpr=key.fingerprint: openpgp.encrypt_to_key(
                    data, fingerprint=fpr
                ),
                from_=from_, to=address, subject=outer,
                message_id=make_message_id(domain), date=date,
            )  # fmt: skip
            planned.append(Planned(address, Protection.OPENPGP, key.fingerprint, raw))
        elif options.protection == Protection.FILES:
            if plaintexts is None:
                plaintexts = _plaintexts(text=text, attachments=attachments)
            passphrase = passphrase_new()
            names = ["message.txt", *encrypted_file_names([n for n, _r in attachments])]
            files = [
                (name, openpgp.encrypt_symmetric(data, passphrase=passphrase))
                for name, (_original, data) in zip(names, plaintexts, strict=True)
            ]
            raw = build_encrypted_files(
                from_=from_, to=address, subject=outer,
                notice=encrypted_files_notice(
                    sender=sender, sender_address=mailbox.address, count=len(files)
                ),
                files=files, message_id=make_message_id(domain), date=date,
            )  # fmt: skip
            planned.append(
                Planned(address, Protection.FILES, raw=raw, passphrase=passphrase,
                        files=len(files))
            )  # fmt: skip
        else:
            planned.append(Planned(address, Protection.LINK))
    if options.phone:
        if normalise_phone(options.phone) is None:
            raise ExternalError(
                _("Numéro de mobile invalide : %(phone)s") % {"phone": options.phone[:30]}
            )
        if len([p for p in planned if p.protection != Protection.OPENPGP]) != 1:
            raise ExternalError(
                _(
                    "L'envoi par SMS (code ou mot de passe) n'est possible que pour un seul "
                    "destinataire hors espace de confiance à la fois."
                )
            )
    return planned


def _plaintexts(
    *, text: str, attachments: Sequence[tuple[str, Callable]]
) -> list[tuple[str, bytes]]:
    """The body (with the list of the original file names) and each attachment's bytes."""
    names = [name for name, _reader in attachments]
    encrypted = encrypted_file_names(names)
    listing = "".join(f"\n- {new} : {name}" for new, name in zip(encrypted, names, strict=True))
    body = text + (("\n\n" + _("Pièces jointes :") + listing) if names else "")
    result = [("message.txt", body.replace("\n", "\r\n").encode())]
    for name, reader in attachments:
        with reader() as stream:
            result.append((name, stream.read()))
    return result


def external_dispatch(
    *,
    user,
    message: Message,
    planned: Sequence[Planned],
    options: ExternalOptions,
    meta: RequestMeta | None = None,
) -> list[ExternalSent]:
    """Inside the sending transaction, once the sender's copy ``message`` is stored: queue
    each external recipient's e-mail (and create the secure links), audit each step. Returns
    what the sender must be shown once (passphrases, codes to read aloud)."""
    shown: list[ExternalSent] = []
    for item in planned:
        extra = {"message": message.pk, "domain": domain_of(item.address),
                 "protection": item.protection}  # fmt: skip
        if item.protection == Protection.OPENPGP:
            row = external_send_raw(
                user=user, message=message, address=item.address, raw=item.raw, meta=meta
            )
            record(
                event=Event.PGP_MESSAGE_ENCRYPTED, actor=user, target=row, meta=meta,
                extra={**extra, "fingerprint": item.fingerprint},
            )  # fmt: skip
            shown.append(ExternalSent(item.address, item.protection, item.fingerprint))
        elif item.protection == Protection.FILES:
            row = external_send_raw(
                user=user, message=message, address=item.address, raw=item.raw, meta=meta
            )
            sms = bool(options.phone)
            phone = normalise_phone(options.phone) if sms else ""
            record(
                event=Event.ENCRYPTED_ATTACHMENTS_SENT, actor=user, target=row, meta=meta,
                extra={**extra, "files": item.files, "sms": sms},
            )  # fmt: skip
            if sms:
                _sms_on_commit(
                    phone=phone, passphrase=item.passphrase,
                    sender=sender_label(user=user, mailbox=message.mailbox),
                )  # fmt: skip
            shown.append(
                ExternalSent(item.address, item.protection, passphrase=item.passphrase, sms=sms)
            )
        else:
            from apps.securelink.services import secure_link_create

            result = secure_link_create(
                user=user, message=message, address=item.address, phone=options.phone,
                include_subject=options.subject_in_clear, meta=meta,
            )  # fmt: skip
            external_send_raw(
                user=user, message=message, address=item.address, raw=result.notice_raw,
                meta=meta,
            )  # fmt: skip
            shown.append(
                ExternalSent(
                    item.address,
                    item.protection,
                    code=result.code_for_sender or "",
                    sms=bool(options.phone),
                )
            )
        record(
            event=Event.EXTERNAL_MESSAGE_SENT, actor=user, target=message, meta=meta,
            extra={**extra, "subject_in_clear": options.subject_in_clear},
        )  # fmt: skip
    return shown


def _sms_on_commit(*, phone: str, passphrase: str, sender: str) -> None:
    text = _("Mot de passe des documents chiffrés envoyés par %(sender)s : %(passphrase)s") % {
        "sender": sender,
        "passphrase": passphrase,
    }

    def send() -> None:
        try:
            sms_send(phone=phone, text=text)
        except SmsError:
            logger.warning("external: passphrase SMS not sent", extra={"phone": "redacted"})

    transaction.on_commit(send)
