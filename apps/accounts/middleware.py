"""Session limits and the second-factor gate.

A login is two steps. After the password, the browser holds only a *pending* login in its
session (``request.user`` is still anonymous): Django's ``LoginRequiredMiddleware`` sends it to
the login page from anywhere but the few views that finish a login. Only a correct code logs
the user in. ``SecondFactorRequiredMiddleware`` is the second lock: an authenticated session
whose device has disappeared (a staff reset) is logged out.
"""

from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts import services
from apps.accounts.models import SessionEndReason, UserSession
from apps.core.request_meta import RequestMeta

AUTH_AT_KEY = "_mssweb_auth_at"
SEEN_AT_KEY = "_mssweb_seen_at"
TOUCH_EVERY = 60  # seconds between two writes of "last seen"


def _ts(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError):
        return None


class SessionControlMiddleware:
    """Ends a session after ``SESSION_IDLE_TIMEOUT`` of inactivity or ``SESSION_ABSOLUTE_TIMEOUT``
    after login, with an audit event and a message on the login page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            ended = self._check(request)
            if ended is not None:
                return ended
        return self.get_response(request)

    def _check(self, request):
        session = request.session
        now = timezone.now()
        auth_at = _ts(session.get(AUTH_AT_KEY))
        seen_at = _ts(session.get(SEEN_AT_KEY))
        reason = None
        if auth_at is None or seen_at is None:
            reason = SessionEndReason.REVOKED  # not made by our login flow
        elif now - auth_at > settings.SESSION_ABSOLUTE_TIMEOUT:
            reason = SessionEndReason.ABSOLUTE
        elif now - seen_at > settings.SESSION_IDLE_TIMEOUT:
            reason = SessionEndReason.IDLE
        if reason is None:
            if (now - seen_at).total_seconds() >= TOUCH_EVERY:
                session[SEEN_AT_KEY] = now.timestamp()
                services.session_touch(session_key=session.session_key, now=now)
            return None
        user_session = UserSession.objects.filter(session_key=session.session_key).first()
        if user_session is not None:
            services.session_end(
                user_session=user_session, reason=reason, meta=RequestMeta.from_request(request)
            )
        logout(request)
        messages.info(request, _("Votre session a expiré : reconnectez-vous."))
        return redirect(settings.LOGIN_URL)


class SecondFactorRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not user.is_verified():
            logout(request)
            return redirect(settings.LOGIN_URL)
        return self.get_response(request)


def mark_session_started(request) -> None:
    now = timezone.now().timestamp()
    request.session[AUTH_AT_KEY] = now
    request.session[SEEN_AT_KEY] = now
