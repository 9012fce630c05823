from celery import shared_task

from apps.gateway import services


@shared_task(name="gateway.ingest", bind=True, acks_late=True, max_retries=None)
def ingest(self, inbound_id: int) -> str:
    """File one accepted message; retried with backoff, the attempts counted in its row."""
    try:
        return services.inbound_ingest(inbound_id=inbound_id)
    except services.IngestionDeferred as exc:
        raise self.retry(countdown=exc.retry_in) from exc


@shared_task(name="gateway.sweep", acks_late=True)
def sweep() -> int:
    return services.inbound_sweep()
