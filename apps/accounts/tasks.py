from celery import shared_task

from apps.accounts import notices, services


@shared_task(name="accounts.send_password_reset_email", acks_late=True)
def send_password_reset_email(user_id: int) -> None:
    notices.password_reset_email_send(user_id=user_id)


@shared_task(name="accounts.notify_second_factor_reset", acks_late=True)
def notify_second_factor_reset(user_id: int) -> None:
    notices.second_factor_reset_email_send(user_id=user_id)


@shared_task(name="accounts.sessions_cleanup", acks_late=True)
def sessions_cleanup() -> int:
    return services.sessions_cleanup()


@shared_task(name="accounts.notify_audit_integrity_failure", acks_late=True)
def notify_audit_integrity_failure(user_id: int, problem: str) -> None:
    notices.audit_integrity_failure_email_send(user_id=user_id, problem=problem)


@shared_task(name="accounts.notify_suspicious_login", acks_late=True)
def notify_suspicious_login(user_id: int, completed_event_id: int) -> None:
    notices.suspicious_login_email_send(user_id=user_id, completed_event_id=completed_event_id)
