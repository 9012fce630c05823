"""E-mails to a user's own address about their account. They carry no health data."""

import logging

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _

from apps.accounts.models import User

logger = logging.getLogger(__name__)


def _send(*, user: User, template: str, context: dict) -> None:
    with translation.override(settings.LANGUAGE_CODE):
        context = {
            "user": user,
            "site_name": settings.SITE_NAME,
            "site_url": settings.SITE_URL,
            **context,
        }
        subject = render_to_string(f"accounts/email/{template}_subject.txt", context)
        body = render_to_string(f"accounts/email/{template}.txt", context)
    send_mail(" ".join(subject.split()), body, settings.DEFAULT_FROM_EMAIL, [user.email])
    logger.info("account notice sent", extra={"notice": template, "user_id": user.pk})


def password_reset_email_send(*, user_id: int) -> None:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return
    path = reverse(
        "accounts:password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    _send(user=user, template="password_reset", context={"reset_url": settings.SITE_URL + path})


def second_factor_reset_email_send(*, user_id: int) -> None:
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return
    _send(
        user=user,
        template="second_factor_reset",
        context={"login_url": settings.SITE_URL + reverse("accounts:login")},
    )


def audit_integrity_failure_email_send(*, user_id: int, problem: str) -> None:
    """To an active staff member: the daily audit verification failed (``problem`` names seqs,
    ids and hashes only)."""
    user = User.objects.filter(pk=user_id, is_active=True, is_staff=True).first()
    if user is None:
        return
    _send(
        user=user,
        template="audit_integrity_failure",
        context={
            "problem": problem,
            "admin_url": settings.SITE_URL + reverse("admin:audit_auditevent_changelist"),
        },
    )


def suspicious_login_email_send(*, user_id: int, completed_event_id: int) -> None:
    """After a login completed with the second factor (``completed_event_id``, its audit row):
    if the login looks unusual (``login_unusual_code``) and the user keeps the preference on,
    tell them at their account's address, once per login, and record it (the reason code
    only). The e-mail names the time, the IP address and the device, nothing else."""
    from apps.audit.events import Event
    from apps.audit.models import AuditEvent
    from apps.audit.selectors import UNUSUAL_LABELS, device_summary, login_unusual_code
    from apps.audit.services import record
    from apps.core.request_meta import RequestMeta
    from apps.notifications.selectors import preference_for_user

    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not preference_for_user(user=user).suspicious_login_email:
        return
    completed = AuditEvent.objects.filter(
        pk=completed_event_id,
        actor_id=user.pk,
        event__in=(Event.SECOND_FACTOR_SUCCEEDED, Event.BACKUP_CODE_USED),
    ).first()
    if completed is None:
        return
    login = (
        AuditEvent.objects.filter(
            actor_id=user.pk, event=Event.LOGIN_SUCCEEDED, id__lt=completed.pk
        )
        .order_by("-id")
        .first()
    )
    if login is None:
        return
    reason = login_unusual_code(event=login, until_id=completed.pk)
    if not reason:
        return
    if AuditEvent.objects.filter(
        event=Event.SUSPICIOUS_LOGIN_NOTIFIED,
        target_type="audit.auditevent",
        target_id=str(login.pk),
    ).exists():
        return  # a task delivered twice: the user was already told
    with translation.override(settings.LANGUAGE_CODE):
        context = {
            "when": timezone.localtime(completed.created_at),
            "ip": login.ip or _("adresse inconnue"),
            "device": device_summary(login.user_agent),
            "reason": str(UNUSUAL_LABELS[reason]),
        }
    _send(
        user=user,
        template="suspicious_login",
        context={
            **context,
            "activity_url": settings.SITE_URL + reverse("audit:activity"),
            "sessions_url": settings.SITE_URL + reverse("accounts:sessions"),
            "password_url": settings.SITE_URL + reverse("accounts:password_change"),
        },
    )
    record(
        event=Event.SUSPICIOUS_LOGIN_NOTIFIED,
        actor=user,
        target=("audit.auditevent", login.pk),
        meta=RequestMeta(ip=login.ip, user_agent=login.user_agent),
        extra={"reason": reason},
    )
