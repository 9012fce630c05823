from celery import shared_task

from apps.trustlist import services


@shared_task(name="trustlist.refresh", acks_late=True)
def refresh() -> int | None:
    """Daily: import ``TRUSTLIST_SOURCE`` when set; a refused list keeps the one in service."""
    result = services.trustlist_refresh()
    return result.trust_list.pk if result else None
