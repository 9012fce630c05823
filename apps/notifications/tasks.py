from celery import shared_task

from apps.notifications import push, services, sms

RETRY_BASE = 30  # seconds; doubles at each attempt, at most RETRY_MAX
RETRY_MAX = 1800


def _backoff(retries: int) -> int:
    return min(RETRY_MAX, RETRY_BASE * 2**retries)


@shared_task(name="notifications.new_mail", acks_late=True)
def new_mail(message_ids: list[int]) -> int:
    return services.new_mail_dispatch(message_ids=message_ids)


@shared_task(name="notifications.push_send", acks_late=True, bind=True, max_retries=6)
def push_send(self, subscription_id: int, payload: dict) -> None:
    try:
        services.push_deliver(subscription_id=subscription_id, payload=payload)
    except push.PushFailed as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None


@shared_task(name="notifications.urgent_notice", acks_late=True, bind=True, max_retries=6)
def urgent_notice(self, user_id: int, channel: str) -> None:
    try:
        services.urgent_notice_send(user_id=user_id, channel=channel)
    except sms.SmsError as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None


@shared_task(name="notifications.digest_flush", acks_late=True)
def digest_flush() -> int:
    return services.digest_flush()
