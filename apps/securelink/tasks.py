from celery import shared_task

from apps.securelink.services import secure_links_expire_sweep


@shared_task(name="securelink.expire_sweep", acks_late=True)
def expire_sweep() -> int:
    """Audit the expiry of the links that reached their end (hourly, by beat)."""
    return secure_links_expire_sweep()
