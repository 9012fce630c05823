import time

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import selectors, services, throttling
from apps.accounts.forms import (
    CodeForm,
    EnrolForm,
    LoginForm,
    PasswordChangeForm,
    PasswordResetForm,
)
from apps.accounts.middleware import mark_session_started
from apps.accounts.models import SessionEndReason, User
from apps.core.request_meta import RequestMeta

PENDING_USER = "_mssweb_pending_user"
PENDING_AT = "_mssweb_pending_at"
PENDING_NEXT = "_mssweb_pending_next"
ENROL_DEVICE = "_mssweb_enrol_device"


# --- Pending login (password checked, code not yet) -------------------------------------------


def _safe_next(request: HttpRequest, candidate: str | None) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


def _pending_user(request: HttpRequest) -> User | None:
    user_id = request.session.get(PENDING_USER)
    started = request.session.get(PENDING_AT, 0)
    if not user_id or time.time() - started > settings.LOGIN_PENDING_TIMEOUT.total_seconds():
        return None
    return User.objects.filter(pk=user_id, is_active=True).first()


def _pending_clear(request: HttpRequest) -> None:
    for key in (PENDING_USER, PENDING_AT, PENDING_NEXT, ENROL_DEVICE):
        request.session.pop(key, None)


def _complete_login(request: HttpRequest, user: User, device) -> str:
    """Both factors passed: log in with a new session key and record the session. Returns
    where to go next."""
    next_url = _safe_next(request, request.session.get(PENDING_NEXT))
    _pending_clear(request)
    auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    otp_login(request, device)
    mark_session_started(request)
    request.session.save()
    services.session_start(user=user, meta=RequestMeta.from_request(request))
    return next_url


def _remember_device(response: HttpResponse, user: User) -> HttpResponse:
    """A signed cookie saying this browser completed a login: it keeps the professional's own
    browser out of account-wide lockouts (see throttling)."""
    response.set_cookie(
        throttling.DEVICE_COOKIE_NAME,
        throttling.device_cookie_value(user_id=user.pk),
        max_age=throttling.DEVICE_COOKIE_MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response


@login_not_required
@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        meta = RequestMeta.from_request(request)
        try:
            user = services.login_password_check(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                meta=meta,
                device_cookie=request.COOKIES.get(throttling.DEVICE_COOKIE_NAME),
            )
        except throttling.Throttled as exc:
            form.add_error(
                None,
                ngettext(
                    "Trop de tentatives. Réessayez dans %(minutes)d minute.",
                    "Trop de tentatives. Réessayez dans %(minutes)d minutes.",
                    exc.minutes,
                )
                % {"minutes": exc.minutes},
            )
            status = 429
        except services.InvalidCredentials as exc:
            form.add_error(None, exc.message)
            status = 400
        else:
            request.session.cycle_key()
            request.session[PENDING_USER] = user.pk
            request.session[PENDING_AT] = time.time()
            request.session[PENDING_NEXT] = request.POST.get("next") or request.GET.get("next")
            if services.has_confirmed_totp(user):
                return redirect("accounts:verify")
            return redirect("accounts:enrol")
    return render(
        request,
        "accounts/login.html",
        {"form": form, "next": request.GET.get("next", "")},
        status=status,
    )


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def verify_view(request: HttpRequest) -> HttpResponse:
    user = _pending_user(request)
    if user is None:
        _pending_clear(request)
        messages.info(request, _("Saisissez d'abord votre adresse et votre mot de passe."))
        return redirect("accounts:login")
    if not services.has_confirmed_totp(user):
        return redirect("accounts:enrol")
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        meta = RequestMeta.from_request(request)
        try:
            device = services.second_factor_verify(
                user=user, code=form.cleaned_data["code"], meta=meta
            )
        except throttling.Throttled as exc:
            _pending_clear(request)
            messages.error(
                request,
                ngettext(
                    "Trop de codes incorrects. Réessayez dans %(minutes)d minute.",
                    "Trop de codes incorrects. Réessayez dans %(minutes)d minutes.",
                    exc.minutes,
                )
                % {"minutes": exc.minutes},
            )
            return redirect("accounts:login")
        except services.InvalidCode as exc:
            form.add_error("code", exc.message)
            status = 400
        else:
            return _remember_device(redirect(_complete_login(request, user, device)), user)
    return render(request, "accounts/verify.html", {"form": form, "pending": user}, status=status)


def _enrol_device(request: HttpRequest, user: User) -> TOTPDevice:
    """The unconfirmed authenticator being enrolled in this browser (kept across reloads)."""
    device_id = request.session.get(ENROL_DEVICE)
    device = TOTPDevice.objects.filter(pk=device_id, user=user, confirmed=False).first()
    if device is None:
        device = services.totp_device_start(user=user)
        request.session[ENROL_DEVICE] = device.pk
    return device


def _enrol_context(device: TOTPDevice, form: EnrolForm) -> dict:
    qr = segno.make(device.config_url, error="m")
    svg = qr.svg_inline(scale=5, border=2, dark="#0b2540", light="#ffffff", omitsize=True)
    secret = services.totp_secret_base32(device)
    return {
        "form": form,
        "qr_svg": mark_safe(svg),  # noqa: S308 - generated by segno from our own URI
        "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "otpauth_uri": device.config_url,
    }


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def enrol_view(request: HttpRequest) -> HttpResponse:
    """First login: set up the authenticator app, then see the backup codes once."""
    user = _pending_user(request)
    if user is None:
        _pending_clear(request)
        return redirect("accounts:login")
    if services.has_confirmed_totp(user):
        return redirect("accounts:verify")
    device = _enrol_device(request, user)
    form = EnrolForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            device, codes = services.totp_device_confirm(
                user=user,
                device_id=device.pk,
                code=form.cleaned_data["code"],
                meta=RequestMeta.from_request(request),
            )
        except services.InvalidCode as exc:
            form.add_error("code", exc.message)
            status = 400
        else:
            next_url = _complete_login(request, user, device)
            response = render(
                request,
                "accounts/backup_codes.html",
                {"codes": codes, "continue_url": next_url, "first_time": True},
            )
            return _remember_device(response, user)
    return render(
        request,
        "accounts/enrol.html",
        {**_enrol_context(device, form), "first_login": True},
        status=status,
    )


# --- Security settings (verified users) -------------------------------------------------------


@never_cache
def security_view(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/security.html",
        selectors.security_overview(user=request.user, session_key=request.session.session_key),
    )


@never_cache
@require_http_methods(["GET", "POST"])
def reenrol_view(request: HttpRequest) -> HttpResponse:
    """Replace the authenticator (new phone): confirmed with a code from the new one."""
    device = _enrol_device(request, request.user)
    form = EnrolForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            device, codes = services.totp_device_confirm(
                user=request.user,
                device_id=device.pk,
                code=form.cleaned_data["code"],
                meta=RequestMeta.from_request(request),
            )
        except services.InvalidCode as exc:
            form.add_error("code", exc.message)
            status = 400
        else:
            request.session.pop(ENROL_DEVICE, None)
            otp_login(request, device)
            messages.success(
                request, _("Votre nouvelle application d'authentification est active.")
            )
            if codes:
                return render(
                    request,
                    "accounts/backup_codes.html",
                    {"codes": codes, "continue_url": reverse("accounts:security")},
                )
            return redirect("accounts:security")
    return render(
        request,
        "accounts/enrol.html",
        {**_enrol_context(device, form), "first_login": False},
        status=status,
    )


@never_cache
@require_POST
def backup_codes_view(request: HttpRequest) -> HttpResponse:
    codes = services.backup_codes_regenerate(
        user=request.user, meta=RequestMeta.from_request(request)
    )
    return render(
        request,
        "accounts/backup_codes.html",
        {"codes": codes, "continue_url": reverse("accounts:security")},
    )


@never_cache
@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@require_http_methods(["GET", "POST"])
def password_change_view(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.password_change(
            user=request.user,
            new_password=form.cleaned_data["new_password1"],
            meta=RequestMeta.from_request(request),
        )
        # Stay logged in here, with a new session key; other sessions have ended.
        old_key = request.session.session_key
        update_session_auth_hash(request, request.user)
        services.session_rekey(old_key=old_key, new_key=request.session.session_key)
        messages.success(request, _("Mot de passe changé. Vos autres sessions ont été fermées."))
        return redirect("accounts:security")
    return render(request, "accounts/password_change.html", {"form": form})


# --- Sessions -----------------------------------------------------------------------------------


@never_cache
def sessions_view(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/sessions.html",
        {
            "sessions": selectors.sessions_active_for_user(user=request.user),
            "current_key": request.session.session_key,
        },
    )


@require_POST
def session_revoke_view(request: HttpRequest, public_id) -> HttpResponse:
    user_session = get_object_or_404(
        selectors.sessions_active_for_user(user=request.user), public_id=public_id
    )
    if user_session.session_key == request.session.session_key:
        return logout_view(request)
    services.session_end(
        user_session=user_session,
        reason=SessionEndReason.REVOKED,
        meta=RequestMeta.from_request(request),
    )
    messages.success(request, _("La session a été fermée."))
    return redirect("accounts:sessions")


@require_POST
def sessions_revoke_others_view(request: HttpRequest) -> HttpResponse:
    count = services.sessions_end_all(
        user=request.user,
        reason=SessionEndReason.REVOKED,
        keep_session_key=request.session.session_key,
        meta=RequestMeta.from_request(request),
    )
    messages.success(
        request,
        ngettext("%(count)d autre session fermée.", "%(count)d autres sessions fermées.", count)
        % {"count": count},
    )
    return redirect("accounts:sessions")


@login_not_required
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        user_session = selectors.session_current(
            user=request.user, session_key=request.session.session_key
        )
        if user_session is not None:
            services.session_end(
                user_session=user_session,
                reason=SessionEndReason.LOGOUT,
                meta=RequestMeta.from_request(request),
            )
    auth_logout(request)
    messages.success(request, _("Vous êtes déconnecté."))
    return redirect("accounts:login")


# --- Password reset by e-mail (the second factor is still asked at the next login) -----------


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PasswordResetForm
    template_name = "accounts/password_reset.html"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        services.password_reset_requested(
            email=form.cleaned_data["email"], meta=RequestMeta.from_request(self.request)
        )
        return super().form_valid(form)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")
    post_reset_login = False

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_reset_complete(
            user=form.user, meta=RequestMeta.from_request(self.request)
        )
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"
