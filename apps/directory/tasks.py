from celery import shared_task

from apps.directory import services


@shared_task(name="directory.import_daily", acks_late=True)
def import_daily() -> int | None:
    run = services.directory_import_from_sources()
    return run.pk if run else None
