"""Reading the trail is itself audited: a user opening their activity or a message's trace,
exporting a trace, staff searching or exporting. Each function records one row (the reader as
actor) in its own transaction, before the data is shown or streamed."""

from typing import Any

from django.db import transaction

from apps.audit.events import Event
from apps.audit.services import record
from apps.core.request_meta import RequestMeta

EXPORT_FORMATS = ("json", "pdf", "csv")


@transaction.atomic
def activity_viewed(*, user, meta: RequestMeta) -> None:
    record(event=Event.ACTIVITY_VIEWED, actor=user, target=user, meta=meta)


@transaction.atomic
def trace_viewed(*, user, message, meta: RequestMeta) -> None:
    record(event=Event.MESSAGE_TRACE_VIEWED, actor=user, target=message, meta=meta,
           extra={"mailbox": message.mailbox_id})  # fmt: skip


@transaction.atomic
def trace_exported(*, user, message, export_format: str, meta: RequestMeta) -> None:
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {export_format!r}")
    record(event=Event.MESSAGE_TRACE_EXPORTED, actor=user, target=message, meta=meta,
           extra={"mailbox": message.mailbox_id, "format": export_format})  # fmt: skip


@transaction.atomic
def staff_searched(*, user, criteria: dict[str, Any], meta: RequestMeta) -> None:
    record(event=Event.AUDIT_SEARCHED_BY_STAFF, actor=user, meta=meta,
           extra={"criteria": criteria})  # fmt: skip


@transaction.atomic
def staff_exported(
    *, user, criteria: dict[str, Any], export_format: str, meta: RequestMeta
) -> None:
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {export_format!r}")
    record(event=Event.AUDIT_EXPORTED_BY_STAFF, actor=user, meta=meta,
           extra={"criteria": criteria, "format": export_format})  # fmt: skip
