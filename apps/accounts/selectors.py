from django.db.models import QuerySet
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import BackupCode, User, UserSession


def sessions_active_for_user(*, user: User) -> QuerySet[UserSession]:
    """The user's own open sessions, most recently seen first."""
    return UserSession.objects.filter(user=user, ended_at__isnull=True).order_by("-last_seen_at")


def session_current(*, user: User, session_key: str | None) -> UserSession | None:
    if not session_key:
        return None
    return sessions_active_for_user(user=user).filter(session_key=session_key).first()


def security_overview(*, user: User, session_key: str | None) -> dict:
    totp = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return {
        "totp_device": totp,
        "backup_codes_remaining": BackupCode.objects.filter(
            device__user=user, used_at__isnull=True
        ).count(),
        "active_sessions": sessions_active_for_user(user=user).count(),
        "current_session": session_current(user=user, session_key=session_key),
    }
