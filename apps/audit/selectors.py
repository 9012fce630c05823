"""Reading the audit trail."""

from django.db.models import QuerySet

from apps.audit.models import AuditEvent


def audit_events_for_user(*, user, limit: int = 50) -> QuerySet[AuditEvent]:
    """The events ``user`` performed, newest first: for their own "my activity" page."""
    return AuditEvent.objects.filter(actor=user).order_by("-id")[:limit]
