import logging

from celery import shared_task
from django.conf import settings

from apps.gateway import services

logger = logging.getLogger(__name__)


@shared_task(name="gateway.ingest", bind=True, acks_late=True, max_retries=None)
def ingest(self, inbound_id: int) -> str:
    """File one accepted message; retried with backoff, the attempts counted in its row."""
    try:
        return services.inbound_ingest(inbound_id=inbound_id)
    except services.IngestionDeferred as exc:
        raise self.retry(countdown=exc.retry_in) from exc


@shared_task(name="gateway.ingest_group", acks_late=True)
def ingest_group(inbound_ids: list[int]) -> dict[str, int]:
    """File messages the gateway accepted together, each on its own: one that fails is retried
    alone (its own ``gateway.ingest`` task, with backoff) and does not hold the others back.
    Redelivered after a crash, the ones already filed are left as they are (idempotent)."""
    statuses: dict[str, int] = {}
    for inbound_id in inbound_ids:
        try:
            status = services.inbound_ingest(inbound_id=inbound_id)
        except services.IngestionDeferred as exc:
            ingest.apply_async((inbound_id,), countdown=exc.retry_in)
            status = "deferred"
        except Exception as exc:  # the database, say: this one alone goes on by itself
            logger.warning(
                "inbound ingestion failed in a group", extra={"error": type(exc).__name__}
            )
            ingest.apply_async((inbound_id,), countdown=settings.GATEWAY_INGEST_RETRY_BASE)
            status = "deferred"
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


@shared_task(name="gateway.sweep", acks_late=True)
def sweep() -> int:
    return services.inbound_sweep()
