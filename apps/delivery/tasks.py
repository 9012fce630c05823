from celery import shared_task

from apps.delivery import services


@shared_task(name="delivery.deliver", acks_late=True)
def deliver(ids: list[int]) -> int:
    """Deliver these outbox rows (those still open and not leased by another worker)."""
    return services.deliveries_run(ids=ids)


@shared_task(name="delivery.sweep", acks_late=True)
def sweep() -> int:
    """Re-enqueue rows that are due or whose worker's lease ran out."""
    return services.deliveries_sweep()
