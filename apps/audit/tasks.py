from celery import shared_task

from apps.audit import anchors, integrity, retention, services


@shared_task(name="audit.seal", ignore_result=True)
def seal() -> int:
    """Chain the events recorded since the last run (every AUDIT_SEAL_INTERVAL seconds)."""
    return services.seal()


@shared_task(name="audit.anchor_daily", acks_late=True)
def anchor_daily() -> int | None:
    anchor = anchors.chain_anchor()
    return anchor["seq"] if anchor else None


@shared_task(name="audit.verify_daily", acks_late=True)
def verify_daily() -> bool:
    return integrity.integrity_check().ok


@shared_task(name="audit.purge_retention", acks_late=True)
def purge_retention() -> dict:
    checkpoint = retention.audit_purge()
    return {"audit": checkpoint.count if checkpoint else 0, "trash": retention.trash_purge()}
