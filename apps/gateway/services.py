"""Inbound mail: accepting a message from the gateway, ingesting it into mailboxes, retries,
quarantine and replay.

``inbound_accept`` runs before the peer hears ``250``: it stores the encrypted raw source and
the ``InboundMessage`` row and commits, then enqueues ``gateway.ingest``. The database is the
queue: a lost broker message only delays ingestion until ``inbound_sweep`` finds the row.

``inbound_ingest`` is idempotent: per recipient mailbox it files the message once (or lets the
delivery app absorb it as a report), recording an ``InboundDelivery`` in the same transaction;
a copy of the same message (same Message-ID and bytes) received again is recorded as a
duplicate, not filed twice.
"""

import hashlib
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from email import policy
from email.parser import BytesHeaderParser
from email.utils import format_datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.attachments.services import blob_bytes, blob_write, blobs_save
from apps.audit.events import Event
from apps.audit.services import AuditEntry, record, record_many
from apps.core.exceptions import ApplicationError
from apps.core.request_meta import RequestMeta
from apps.delivery.receipts import receipt_absorb
from apps.gateway.models import DeliveryOutcome, InboundDelivery, InboundMessage, InboundStatus
from apps.ingestion.parse import parse_message
from apps.mailbox.models import Mailbox
from apps.mailbox.services import message_deliver_raw

logger = logging.getLogger(__name__)

_MSG_ID = re.compile(r"<([^<>\s]{1,250})>")
_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")
SWEEP_BATCH = 500


class GatewayError(ApplicationError):
    pass


class MailboxGone(GatewayError):
    pass


class IngestionDeferred(GatewayError):
    """Ingestion failed and was recorded; try again in ``retry_in`` seconds."""

    def __init__(self, message: str = "", *, retry_in: int, extra: dict | None = None) -> None:
        super().__init__(message, extra=extra)
        self.retry_in = retry_in


@dataclass(frozen=True)
class InboundEnvelope:
    """What the SMTP conversation told us, beside the message bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer_ip: str | None = None
    helo: str = ""
    tls_version: str = ""
    tls_cipher: str = ""
    client_cert_dn: str = ""
    protocol: str = "smtp"


# --- Accepting ----------------------------------------------------------------------------------


def header_block(raw: bytes):
    """The header fields of ``raw`` (a ``compat32`` message without its body), or None if they
    cannot be parsed. Only the header block is read: the parser would otherwise go through every
    line of the body too."""
    head = raw[:262_144]
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = head.find(separator)
        if end != -1:
            head = head[: end + len(separator)]
            break
    try:
        return BytesHeaderParser(policy=policy.compat32).parsebytes(head)
    except Exception:
        return None


def header_message_id(raw: bytes) -> str:
    """The Message-ID without its angle brackets (as ``Message.message_id`` keeps it), or ""."""
    headers = header_block(raw)
    if headers is None:
        return ""
    try:
        value = str(headers.get("Message-ID", "") or "")
    except Exception:
        return ""
    match = _MSG_ID.search(value)
    return match.group(1) if match else ""


def inbound_accept(*, raw: bytes, envelope: InboundEnvelope) -> InboundMessage:
    """Store ``raw`` encrypted and its envelope, committed, and enqueue its ingestion.

    Any exception means nothing was kept (the caller answers ``451``): the ciphertext lived
    in the unsaved row only, which the failed commit did not save.
    """
    return inbound_commit(rows=[inbound_prepare(raw=raw, envelope=envelope)])[0]


def inbound_prepare(*, raw: bytes, envelope: InboundEnvelope) -> InboundMessage:
    """The first half of accepting, with no database: the ``InboundMessage`` row of ``raw``,
    **not saved**, whose ``raw`` is a ``StoredBlob`` row, not saved either, holding the
    encrypted raw (``inline``). ``inbound_commit`` saves both: the raw is then durable when that
    one commit is (a whole group's raws in one WAL flush, where files would need two fsyncs
    each). Everything computed from the bytes (digest, Message-ID) is computed here, so that the
    gateway's commit, which its senders wait for one group at a time, only writes."""
    blob = blob_write(source=io.BytesIO(raw), inline=True)
    return InboundMessage(
        raw=blob,
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        message_id=header_message_id(raw),
        mail_from=envelope.mail_from[:320],
        rcpt_tos=list(envelope.rcpt_tos),
        protocol=envelope.protocol,
        peer_ip=envelope.peer_ip,
        helo=_UNPRINTABLE.sub("?", envelope.helo)[:255],
        tls_version=envelope.tls_version[:16],
        tls_cipher=envelope.tls_cipher[:100],
        client_cert_dn=envelope.client_cert_dn[:1000],
    )


def inbound_commit(*, rows: Sequence[InboundMessage], enqueue: bool = True) -> list[InboundMessage]:
    """The second half: the rows ``inbound_prepare`` made, their raws' ``StoredBlob`` rows and
    their audit events (one per message), in **one** transaction of a few multi-row INSERTs
    (the gateway groups the messages that finished their data meanwhile: one commit, one WAL
    flush, for several messages is what lets acceptance scale). Raises if anything fails: then
    nothing was committed, and the same rows may be given again. With ``enqueue`` (the default)
    each row's ingestion is enqueued once committed; otherwise the caller does it with
    ``inbound_enqueue``."""
    blobs = [row.raw for row in rows]
    for row, blob in zip(rows, blobs, strict=True):
        # A failed earlier attempt may have given them ids before rolling back.
        blob.pk = None
        blob._state.adding = True
        row.pk = None
        row._state.adding = True
    with transaction.atomic():
        blobs_save(blobs)
        for row, blob in zip(rows, blobs, strict=True):
            row.raw = blob  # its new id
        InboundMessage.objects.bulk_create(rows)
        record_many(
            entries=[
                AuditEntry(
                    event=Event.INBOUND_ACCEPTED,
                    target=inbound,
                    meta=RequestMeta(ip=inbound.peer_ip),
                    extra={
                        "size": inbound.size,
                        "recipients": len(inbound.rcpt_tos),
                        "protocol": inbound.protocol,
                        "tls": inbound.tls_version,
                        "client_dn": inbound.client_cert_dn,
                    },
                )
                for inbound in rows
            ]
        )
        if enqueue:
            for inbound in rows:
                _enqueue_on_commit(inbound.pk)
    return list(rows)


def inbound_enqueue(*, inbound_ids: Sequence[int]) -> None:
    """Enqueue the ingestion of committed rows, one task for them all (a broker message costs
    the gateway more than a database row; the worker files each message on its own). Best
    effort: rows the broker loses are found by ``inbound_sweep``."""
    from apps.gateway import tasks

    if not inbound_ids:
        return
    try:
        if len(inbound_ids) == 1:
            tasks.ingest.delay(inbound_ids[0])
        else:
            tasks.ingest_group.delay(list(inbound_ids))
    except Exception as exc:
        logger.warning("inbound ingestion not enqueued", extra={"error": type(exc).__name__})


def inbound_refusal_record(
    *, reason: str, peer_ip: str | None, sender_domain: str = "", client_dn: str = ""
) -> None:
    """Audit a refusal that matters for security (certificate not allowed, smuggling)."""
    record(
        event=Event.INBOUND_REJECTED,
        target=None,
        meta=RequestMeta(ip=peer_ip),
        extra={"reason": reason, "sender_domain": sender_domain[:253], "client_dn": client_dn},
    )


def _enqueue_on_commit(inbound_id: int) -> None:
    from apps.gateway import tasks

    # robust: the row is committed whatever happens to the broker; the sweeper catches up.
    transaction.on_commit(lambda: tasks.ingest.delay(inbound_id), robust=True)


# --- Ingesting ----------------------------------------------------------------------------------


def dedupe_key(inbound: InboundMessage) -> str:
    return hashlib.sha256(f"{inbound.message_id}\n{inbound.sha256}".encode()).hexdigest()


def trace_header(inbound: InboundMessage) -> bytes:
    """The ``Received:`` line this gateway adds (RFC 5321 §4.4), made from the row only, so that
    every attempt files the same bytes."""
    hostname = settings.GATEWAY_HOSTNAME or "localhost"
    helo = _UNPRINTABLE.sub("?", inbound.helo) or "unknown"
    with_ = "LMTP" if inbound.protocol == "lmtp" else ("ESMTPS" if inbound.tls_version else "ESMTP")
    tls = f"\r\n\t(using {inbound.tls_version} with cipher {inbound.tls_cipher})"
    lines = (
        f"Received: from {helo} ([{inbound.peer_ip or 'unknown'}])"
        f"{tls if inbound.tls_version else ''}"
        f"\r\n\tby {hostname} (mssweb) with {with_} id {inbound.pk};"
        f"\r\n\t{format_datetime(inbound.received_at)}\r\n"
    )
    return lines.encode("ascii", "replace")


def _lease() -> timedelta:
    return timedelta(seconds=settings.GATEWAY_INGEST_LEASE)


def _retry_in(attempts: int) -> int:
    return int(min(settings.GATEWAY_INGEST_RETRY_BASE * 2 ** max(0, attempts - 1), 3600))


def inbound_ingest(*, inbound_id: int) -> str:
    """File inbound message ``inbound_id`` into each recipient mailbox; returns its status.

    Does nothing for a row already ingested or quarantined, or held by another worker. On
    failure, records the attempt and raises ``IngestionDeferred``, or quarantines the message
    after ``GATEWAY_INGEST_MAX_ATTEMPTS`` attempts (and returns "quarantined").
    """
    now = timezone.now()
    claimed = (
        InboundMessage.objects.filter(pk=inbound_id, status=InboundStatus.ACCEPTED)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + _lease())
    )
    if not claimed:
        current = InboundMessage.objects.filter(pk=inbound_id).values_list("status", flat=True)
        return current.first() or ""
    inbound = InboundMessage.objects.select_related("raw").get(pk=inbound_id)
    try:
        raw = blob_bytes(inbound.raw)
        parsed = parse_message(raw)
        filed = trace_header(inbound) + raw
        outcomes = [
            _deliver_one(inbound=inbound, address=address, parsed=parsed, raw=filed)
            for address in inbound.rcpt_tos
        ]
    except Exception as exc:
        return _record_failure(inbound=inbound, exc=exc)
    with transaction.atomic():
        InboundMessage.objects.filter(pk=inbound.pk).update(
            status=InboundStatus.INGESTED, ingested_at=timezone.now(), lease_until=None
        )
        record(
            event=Event.INBOUND_INGESTED,
            target=inbound,
            extra={
                "attempts": inbound.attempts + 1,
                **{kind.value: outcomes.count(kind) for kind in DeliveryOutcome},
            },
        )
    return InboundStatus.INGESTED


def _deliver_one(*, inbound: InboundMessage, address: str, parsed, raw: bytes) -> str:
    mailbox = Mailbox.objects.filter(address=address).first()
    if mailbox is None:
        raise MailboxGone("A recipient mailbox no longer exists.")
    done = InboundDelivery.objects.filter(inbound=inbound, mailbox=mailbox).first()
    if done is not None:
        return done.outcome
    key = dedupe_key(inbound)
    try:
        with transaction.atomic():
            earlier = InboundDelivery.objects.filter(mailbox=mailbox, dedupe_key=key).first()
            if earlier is not None:
                return _record_duplicate(inbound=inbound, mailbox=mailbox, earlier=earlier)
            message = None
            if receipt_absorb(mailbox=mailbox, parsed=parsed, raw=raw):
                outcome = DeliveryOutcome.ABSORBED
            else:
                message = message_deliver_raw(mailbox=mailbox, raw=raw)
                outcome = DeliveryOutcome.FILED
            InboundDelivery.objects.create(
                inbound=inbound, mailbox=mailbox, message=message, outcome=outcome, dedupe_key=key
            )
            return outcome
    except IntegrityError:
        # Another worker got there first, with this message or an identical copy.
        done = InboundDelivery.objects.filter(inbound=inbound, mailbox=mailbox).first()
        if done is not None:
            return done.outcome
        earlier = InboundDelivery.objects.filter(mailbox=mailbox, dedupe_key=key).first()
        if earlier is None:
            raise
        return _record_duplicate(inbound=inbound, mailbox=mailbox, earlier=earlier)


def _record_duplicate(*, inbound, mailbox, earlier: InboundDelivery) -> str:
    InboundDelivery.objects.create(
        inbound=inbound,
        mailbox=mailbox,
        message_id=earlier.message_id,
        outcome=DeliveryOutcome.DUPLICATE,
    )
    return DeliveryOutcome.DUPLICATE


def _error_label(exc: BaseException) -> str:
    """Class name and a reason safe to keep: never the text of arbitrary exceptions, which may
    quote message content."""
    reason = ""
    if isinstance(exc, ApplicationError):
        reason = exc.message
    elif isinstance(exc, OSError):
        reason = exc.strerror or ""
    return f"{type(exc).__name__}: {reason}"[:300] if reason else type(exc).__name__[:300]


def _record_failure(*, inbound: InboundMessage, exc: Exception) -> str:
    label = _error_label(exc)
    logger.warning(
        "inbound ingestion failed", extra={"inbound": inbound.pk, "error": type(exc).__name__}
    )
    with transaction.atomic():
        row = InboundMessage.objects.select_for_update().get(pk=inbound.pk)
        row.attempts += 1
        row.last_error = label
        row.lease_until = None
        if row.attempts >= settings.GATEWAY_INGEST_MAX_ATTEMPTS:
            row.status = InboundStatus.QUARANTINED
            record(
                event=Event.INBOUND_QUARANTINED,
                target=row,
                extra={"attempts": row.attempts, "error": type(exc).__name__},
            )
        else:
            row.next_attempt_at = timezone.now() + timedelta(seconds=_retry_in(row.attempts))
        row.save(update_fields=["attempts", "last_error", "lease_until", "status",
                                "next_attempt_at"])  # fmt: skip
    if row.status == InboundStatus.QUARANTINED:
        logger.error("inbound message quarantined", extra={"inbound": inbound.pk})
        return InboundStatus.QUARANTINED
    raise IngestionDeferred(label, retry_in=_retry_in(row.attempts)) from exc


# --- Staff and housekeeping ---------------------------------------------------------------------


@transaction.atomic
def inbound_replay(*, inbound: InboundMessage, user, meta: RequestMeta | None = None) -> bool:
    """Put a quarantined message back in the queue (audited); False if it was not quarantined."""
    previous = inbound.attempts
    replayed = InboundMessage.objects.filter(
        pk=inbound.pk, status=InboundStatus.QUARANTINED
    ).update(
        status=InboundStatus.ACCEPTED,
        attempts=0,
        next_attempt_at=timezone.now(),
        lease_until=None,
    )
    if not replayed:
        return False
    record(
        event=Event.INBOUND_REPLAYED,
        actor=user,
        target=inbound,
        meta=meta,
        extra={"previous_attempts": previous, "last_error": inbound.last_error},
    )
    _enqueue_on_commit(inbound.pk)
    return True


def inbound_sweep(*, grace: timedelta | None = None, limit: int = SWEEP_BATCH) -> int:
    """Enqueue again accepted messages due for more than ``grace`` (default
    ``GATEWAY_SWEEP_AFTER`` seconds) that no worker holds; returns how many."""
    from apps.gateway import tasks

    now = timezone.now()
    grace = timedelta(seconds=settings.GATEWAY_SWEEP_AFTER) if grace is None else grace
    due = list(
        InboundMessage.objects.filter(
            status=InboundStatus.ACCEPTED, next_attempt_at__lte=now - grace
        )
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        # Pushed back a little so that the next sweep does not enqueue it again at once.
        InboundMessage.objects.filter(pk=pk, status=InboundStatus.ACCEPTED).update(
            next_attempt_at=now
        )
        tasks.ingest.delay(pk)
    if due:
        logger.info("inbound sweep", extra={"enqueued": len(due)})
    return len(due)
