"""E-mails to a user's own address about their account. They carry no health data."""

import logging

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

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
