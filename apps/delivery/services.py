"""Outbound delivery: the outbox rows written with the sender's copy, the worker that claims and
delivers them, retries and final failures (with a report to the sender), the sweeper, and the
read receipts this operator sends.

The database is the queue: a row exists, with a status, before any broker hears of it. The
worker claims rows (committed lease), talks SMTP with no transaction open, then records each
result in its own short transaction. A lost broker message or a killed worker only delays mail:
the sweeper re-enqueues rows that are due or whose lease ran out.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.attachments.models import StoredBlob
from apps.attachments.services import BlobTampered, blob_bytes, blob_store
from apps.audit.events import Event
from apps.audit.services import record
from apps.core.request_meta import RequestMeta
from apps.delivery import smtp
from apps.delivery.models import (
    OPEN_STATUSES,
    DeliveryStatus,
    OutboundDelivery,
    ReceiptAnswer,
    ReceiptAnswerKind,
    ReceiptMode,
    ReceiptPreference,
)
from apps.delivery.reports import FailedRecipient, build_failure_report, build_read_receipt
from apps.ingestion.build import make_message_id
from apps.mailbox.models import FolderKind, Mailbox, Message
from apps.trustlist.routing import Route, domain_of, route_for, routes_for, trusted_dns

logger = logging.getLogger(__name__)

REMOTE_ROUTES = (Route.OPERATOR, Route.PATIENT)


def _enqueue(ids: list[int]) -> None:
    from apps.delivery.tasks import deliver

    for start in range(0, len(ids), settings.DELIVERY_BATCH_SIZE):
        deliver.delay(ids[start : start + settings.DELIVERY_BATCH_SIZE])


# --- Queueing (inside the sender's transaction) -----------------------------------------------


def deliveries_queue(
    *,
    user,
    message: Message,
    raw: StoredBlob,
    remote: dict[str, Route],
    local: Iterable[str] = (),
    dsn_requested: bool = False,
    meta: RequestMeta | None = None,
) -> list[OutboundDelivery]:
    """One row per recipient of the sender's copy ``message``: ``remote`` ones pending (the
    delivery task is enqueued when the caller's transaction commits), ``local`` ones already
    delivered (so that the sender sees every recipient, and read receipts, in one list).

    Call inside the transaction that stores the sender's copy."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.DELIVERY_MAX_LIFETIME)
    common = {"message": message, "mailbox": message.mailbox, "msgid": message.message_id,
              "envelope_from": message.mailbox.address, "created_at": now,
              "expires_at": expires, "dsn_requested": dsn_requested}  # fmt: skip
    rows = OutboundDelivery.objects.bulk_create(
        [
            OutboundDelivery(
                recipient=address,
                domain=domain_of(address),
                route=route,
                raw=raw,
                next_attempt_at=now,
                **common,
            )
            for address, route in sorted(remote.items())
        ]
        + [
            OutboundDelivery(
                recipient=address,
                domain=domain_of(address),
                route=Route.LOCAL,
                status=DeliveryStatus.DELIVERED,
                delivered_at=now,
                **common,
            )
            for address in sorted(set(local))
        ]
    )
    queued = [row for row in rows if row.status == DeliveryStatus.PENDING]
    for row in queued:
        record(
            event=Event.DELIVERY_QUEUED, actor=user, target=row, meta=meta,
            extra={"message": message.pk, "domain": row.domain, "route": row.route},
        )  # fmt: skip
    if queued:
        ids = [row.pk for row in queued]
        # robust: the rows are committed whatever happens to the broker (the sweeper catches
        # up); a broker that is down must not turn a sent message into an error for the user.
        transaction.on_commit(lambda: _enqueue(ids), robust=True)
    return rows


# --- The worker -------------------------------------------------------------------------------


def deliveries_claim(
    *, now: datetime, ids: Sequence[int] | None = None, limit: int | None = None
) -> list[OutboundDelivery]:
    """Reserve open rows that are due (and not leased by a live worker) for this worker: the
    lease is committed before any SMTP. ``skip_locked`` lets concurrent workers take disjoint
    rows instead of waiting on each other."""
    lease = now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    with transaction.atomic():
        qs = (
            OutboundDelivery.objects.select_for_update(skip_locked=True)
            .filter(status__in=OPEN_STATUSES, next_attempt_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        )
        if ids is not None:
            qs = qs.filter(pk__in=list(ids))
        pks = list(
            qs.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[
                : limit or settings.DELIVERY_BATCH_SIZE
            ]
        )
        OutboundDelivery.objects.filter(pk__in=pks).update(
            lease_until=lease, attempts=F("attempts") + 1
        )
    return list(
        OutboundDelivery.objects.filter(pk__in=pks).select_related("raw", "mailbox", "message")
    )


def _backoff(attempts: int) -> timedelta:
    seconds = settings.DELIVERY_RETRY_MIN * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.DELIVERY_RETRY_MAX))


def deliveries_run(*, ids: Sequence[int] | None = None, now: datetime | None = None) -> int:
    """Claim and deliver (``ids``, or whatever is due); returns how many rows were claimed.
    Idempotent: rows already delivered, failed or leased elsewhere are left alone."""
    now = now or timezone.now()
    rows = deliveries_claim(now=now, ids=ids)
    expired = [row for row in rows if row.expires_at <= now]
    if expired:
        days = max(1, settings.DELIVERY_MAX_LIFETIME // 86400)
        outcome = smtp.Outcome(
            smtp.FAILED,
            _("aucune remise possible en %(days)d jours") % {"days": days},
            enhanced="4.4.7",
        )
        _record([(row, _expired_outcome(row, outcome)) for row in expired], now=now)
    by_domain: dict[tuple[str, bool], list[OutboundDelivery]] = defaultdict(list)
    for row in rows:
        if row.expires_at > now:
            by_domain[(row.domain, row.route == Route.EXTERNAL)].append(row)
    for (domain, external), group in by_domain.items():
        _deliver_domain(domain, group, now=now, external=external)
    return len(rows)


def _expired_outcome(row: OutboundDelivery, outcome: smtp.Outcome) -> smtp.Outcome:
    if not row.reason:
        return outcome
    return smtp.Outcome(
        outcome.kind, f"{outcome.reason} ({row.reason})"[:300], row.last_reply,
        row.enhanced_status or outcome.enhanced,
    )  # fmt: skip


def _deliver_domain(
    domain: str, rows: list[OutboundDelivery], *, now: datetime, external: bool = False
) -> None:
    """One connection to the domain's next hop, one mail transaction per message. Mail outside
    the trust space (``external``, see ``apps.external``) skips the trust-list check."""
    try:
        session = smtp.connect(
            domain=domain, trusted=frozenset() if external else trusted_dns(domain),
            external=external,
        )  # fmt: skip
    except smtp.DeliveryError as exc:
        outcome = smtp.Outcome(
            smtp.FAILED if exc.permanent else smtp.DEFERRED, exc.message, exc.reply,
            exc.enhanced, exc.remote,
        )  # fmt: skip
        _record([(row, outcome) for row in rows], now=now)
        return
    batches: dict[tuple, list[OutboundDelivery]] = defaultdict(list)
    for row in rows:
        batches[(row.raw_id, row.envelope_from, row.dsn_requested)].append(row)
    with session:
        pending = list(batches.values())
        while pending:
            batch = pending.pop(0)
            try:
                raw = blob_bytes(batch[0].raw)
            except (BlobTampered, OSError, AttributeError):
                unreadable = smtp.Outcome(smtp.FAILED, _("source du message illisible"))
                _record([(row, unreadable) for row in batch], now=now)
                continue
            try:
                outcomes = session.send(
                    envelope_from=batch[0].envelope_from,
                    recipients=[row.recipient for row in batch],
                    raw=raw,
                    dsn=batch[0].dsn_requested,
                )
            except smtp.DeliveryError as exc:
                # The connection is gone: this batch and the following ones wait for a retry.
                outcome = smtp.Outcome(smtp.DEFERRED, exc.message, exc.reply, exc.enhanced)
                left = [row for rest in [batch, *pending] for row in rest]
                _record([(row, outcome) for row in left], now=now)
                return
            _record([(row, outcomes[row.recipient]) for row in batch], now=now, hop=session.hop)


_EVENTS = {
    smtp.DELIVERED: Event.DELIVERY_DELIVERED,
    smtp.DEFERRED: Event.DELIVERY_DEFERRED,
    smtp.FAILED: Event.DELIVERY_FAILED,
}


def _record(
    results: list[tuple[OutboundDelivery, smtp.Outcome]],
    *,
    now: datetime,
    hop: smtp.Hop | None = None,
) -> None:
    """Write the outcome of one attempt, audit each transition, and report final failures to
    the sender — in one transaction, so a failed row always comes with its report."""
    failed: list[tuple[OutboundDelivery, smtp.Outcome]] = []
    with transaction.atomic():
        for row, outcome in results:
            kind = outcome.kind
            if kind == smtp.DEFERRED and now >= row.expires_at:
                kind = smtp.FAILED
            changes = {
                "lease_until": None,
                "last_reply": outcome.reply,
                "enhanced_status": outcome.enhanced[:16],
                "reason": outcome.reason[:300],
            }
            if kind == smtp.DELIVERED:
                changes.update(status=DeliveryStatus.DELIVERED, delivered_at=now, reason="")
            elif kind == smtp.DEFERRED:
                changes.update(
                    status=DeliveryStatus.DEFERRED, next_attempt_at=now + _backoff(row.attempts)
                )
            else:
                changes.update(status=DeliveryStatus.FAILED)
            # Only while our lease holds: a row re-claimed by another worker is theirs now.
            updated = OutboundDelivery.objects.filter(
                pk=row.pk, status__in=OPEN_STATUSES, lease_until=row.lease_until
            ).update(**changes)
            if not updated:
                continue
            for field, value in changes.items():
                setattr(row, field, value)
            record(
                event=_EVENTS[kind], target=row,
                extra={"message": row.message_id,
                       "domain": row.domain, "attempts": row.attempts,
                       "smtp_reply": outcome.reply, "status": outcome.enhanced},
            )  # fmt: skip
            if kind == smtp.FAILED and row.envelope_from:
                failed.append((row, outcome))
        _report_failures(failed, now=now, hop=hop)
    for row, outcome in results:
        logger.info(
            "delivery attempt",
            extra={"delivery_pk": row.pk, "domain": row.domain, "outcome": outcome.kind,
                   "smtp_reply": outcome.reply, "attempts": row.attempts},
        )  # fmt: skip


def _report_failures(
    failed: list[tuple[OutboundDelivery, smtp.Outcome]], *, now: datetime, hop: smtp.Hop | None
) -> None:
    """A delivery-status report per message in the sender's inbox (no report for reports)."""
    from apps.mailbox.services import message_deliver_raw

    by_message: dict[tuple[int, str], list[tuple[OutboundDelivery, smtp.Outcome]]] = defaultdict(
        list
    )
    for row, outcome in failed:
        by_message[(row.mailbox_id, row.msgid)].append((row, outcome))
    for items in by_message.values():
        first = items[0][0]
        try:
            original = blob_bytes(first.raw) if first.raw_id else b""
        except (BlobTampered, OSError):
            original = b""
        domain = first.mailbox.address.rpartition("@")[2]
        report = build_failure_report(
            reporting_mta=settings.DELIVERY_EHLO_NAME or domain,
            postmaster=f"postmaster@{domain}",
            to=first.mailbox.address,
            original_raw=original,
            original_message_id=first.msgid,
            original_subject=first.message.subject if first.message else "",
            arrival=first.created_at,
            failed=[
                FailedRecipient(
                    address=row.recipient,
                    status=outcome.enhanced
                    if outcome.enhanced[:1] in "45" and outcome.enhanced
                    else "5.0.0",
                    reason=outcome.reason,
                    remote_mta=hop.host if hop else "",
                    diagnostic=f"{outcome.reply} {outcome.remote}".strip() if outcome.reply else "",
                )
                for row, outcome in items
            ],
            date=now,
        )
        message_deliver_raw(mailbox=first.mailbox, raw=report)


def deliveries_due(*, now: datetime | None = None) -> list[int]:
    now = now or timezone.now()
    return list(
        OutboundDelivery.objects.filter(status__in=OPEN_STATUSES, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:10_000]
    )


def deliveries_sweep(*, now: datetime | None = None) -> int:
    """Re-enqueue rows that are due, or whose worker's lease ran out (a lost broker message, a
    killed worker). A row enqueued twice is still delivered once: the claim decides."""
    ids = deliveries_due(now=now)
    if ids:
        _enqueue(ids)
        logger.info("delivery sweep", extra={"enqueued": len(ids)})
    return len(ids)


# --- Read receipts we send --------------------------------------------------------------------


def receipt_mode_for(*, user) -> str:
    pref = ReceiptPreference.objects.filter(user=user).values_list("mode", flat=True).first()
    return pref or ReceiptMode.ASK


@transaction.atomic
def receipt_mode_set(*, user, mode: str) -> None:
    ReceiptPreference.objects.update_or_create(user=user, defaults={"mode": ReceiptMode(mode)})


def _asks_receipt(message: Message) -> bool:
    return bool(
        message.read_receipt_to
        and message.sent_by_id is None
        and message.folder.kind not in (FolderKind.SENT, FolderKind.DRAFTS)
        and message.read_receipt_to.lower() != message.mailbox.address
    )


def read_receipt_on_open(*, user, message: Message, meta: RequestMeta | None = None) -> bool:
    """Called when ``user`` opens ``message``: send the read receipt it asks for, or not, as
    the user's setting says (patients' messages always get one). True when the user is to be
    asked (the message view then shows Envoyer / Ignorer)."""
    if not _asks_receipt(message) or ReceiptAnswer.objects.filter(message=message).exists():
        return False
    routes = routes_for([message.from_address, message.read_receipt_to])
    if routes[message.read_receipt_to] == Route.EXTERNAL:
        return False  # nowhere we may send it (outside the trust space)
    patient = routes[message.from_address] == Route.PATIENT
    mode = ReceiptMode.ALWAYS if patient else receipt_mode_for(user=user)
    if mode == ReceiptMode.ASK:
        return True
    read_receipt_answer(
        user=user, message=message, send=mode == ReceiptMode.ALWAYS, automatic=True, meta=meta
    )
    return False


def read_receipt_answer(
    *, user, message: Message, send: bool, automatic: bool = False,
    meta: RequestMeta | None = None,
) -> bool:  # fmt: skip
    """Send (or decline) the read receipt ``message`` asks for, once. True when one was sent."""
    if not _asks_receipt(message):
        return False
    to = message.read_receipt_to
    route = route_for(to)
    now = timezone.now()
    raw = b""
    receipt_id = make_message_id(message.mailbox.address.rpartition("@")[2])
    if send and route != Route.EXTERNAL:
        try:
            original = blob_bytes(message.raw) if message.raw_id else b""
        except (BlobTampered, OSError):
            original = b""
        raw = build_read_receipt(
            from_=(message.mailbox.display_name, message.mailbox.address),
            to=to,
            reporting_ua=message.mailbox.address.rpartition("@")[2],
            original_raw=original,
            original_message_id=message.message_id,
            original_subject=message.subject,
            original_date=message.date,
            automatic=automatic,
            date=now,
            message_id=receipt_id,
        )
    blob = blob_store(source=io.BytesIO(raw)) if raw and route in REMOTE_ROUTES else None
    with transaction.atomic():
        _answer, created = ReceiptAnswer.objects.get_or_create(
            message=message,
            defaults={"kind": ReceiptAnswerKind.SENT if raw else ReceiptAnswerKind.IGNORED},
        )
        if not created or not raw:
            return False
        if route == Route.LOCAL:
            _receipt_deliver_locally(to=to, raw=raw)
        else:
            row = OutboundDelivery.objects.create(
                mailbox=message.mailbox, msgid=receipt_id, raw=blob,
                envelope_from="", recipient=to, domain=domain_of(to), route=route,
                expires_at=now + timedelta(seconds=settings.DELIVERY_MAX_LIFETIME),
            )  # fmt: skip
            transaction.on_commit(lambda: _enqueue([row.pk]), robust=True)
        record(
            event=Event.READ_RECEIPT_SENT, actor=user, target=message, meta=meta,
            extra={"automatic": automatic, "route": str(route)},
        )  # fmt: skip
    return True


def _receipt_deliver_locally(*, to: str, raw: bytes) -> None:
    from apps.delivery.receipts import receipt_absorb
    from apps.ingestion.parse import parse_message
    from apps.mailbox.services import message_deliver_raw

    sender_box = Mailbox.objects.filter(address=to.lower()).first()
    if sender_box is None:
        return
    if not receipt_absorb(mailbox=sender_box, parsed=parse_message(raw), raw=raw):
        message_deliver_raw(mailbox=sender_box, raw=raw)
