"""Everything that changes accounts, credentials and sessions. Each write is audited in the same
transaction; e-mails to users go out through Celery once the transaction has committed."""

import base64
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import throttling
from apps.accounts.models import (
    BackupCode,
    BackupCodeDevice,
    Domain,
    SessionEndReason,
    User,
    UserSession,
    backup_code_digest,
    normalize_email,
)
from apps.audit.events import Event
from apps.audit.services import record
from apps.core.exceptions import ApplicationError
from apps.core.request_meta import RequestMeta
from apps.mailbox.models import Mailbox, MailboxKind

AuthFailureKind = throttling.AuthFailure.Kind


class AccountError(ApplicationError):
    pass


class InvalidCredentials(AccountError):
    pass


class InvalidCode(AccountError):
    pass


# --- Accounts -----------------------------------------------------------------------------------


@transaction.atomic
def account_create(
    *,
    email: str,
    first_name: str,
    last_name: str,
    password: str | None,
    idnat: str = "",
    profession_code: str = "",
    specialty_code: str = "",
    civility: str = "",
    phone: str = "",
    is_staff: bool = False,
    is_superuser: bool = False,
    totp_secret: str | None = None,
    actor: User | None = None,
    meta: RequestMeta | None = None,
) -> User:
    """Create an account and, for a professional, their personal mailbox on their domain.

    The address's domain must be an active operator domain (staff-only accounts excepted).
    ``totp_secret`` (base32) pre-enrols a confirmed authenticator, for provisioning scripts.
    """
    email = normalize_email(email)
    domain_name = email.rpartition("@")[2]
    domain = Domain.objects.filter(name=domain_name, is_active=True).first()
    if domain is None and not is_staff:
        raise AccountError(
            _("Le domaine %(domain)s n'est pas un domaine actif de l'opérateur.")
            % {"domain": domain_name}
        )
    user = User(
        email=email,
        domain=domain,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        idnat=idnat.strip(),
        profession_code=profession_code,
        specialty_code=specialty_code.strip().upper(),
        civility=civility,
        phone=phone.strip(),
        is_staff=is_staff,
        is_superuser=is_superuser,
    )
    if password is not None:
        password_validation.validate_password(password, user)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    if domain is not None and user.idnat:
        Mailbox.objects.create(
            address=email,
            kind=MailboxKind.PERSONAL,
            domain=domain,
            display_name=user.display_name,
            owner=user,
        )
    if totp_secret:
        device = totp_device_start(user=user, secret=totp_secret, name="provisioned")
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    record(
        event=Event.ACCOUNT_CREATED,
        actor=actor,
        target=user,
        meta=meta,
        extra={"staff": is_staff, "provisioned_totp": bool(totp_secret)},
    )
    return user


@transaction.atomic
def account_set_active(
    *, user: User, active: bool, actor: User | None, meta: RequestMeta | None = None
) -> User:
    """Suspend (every session ends at once) or reactivate an account."""
    if user.is_active == active:
        return user
    user.is_active = active
    user.suspended_at = None if active else timezone.now()
    user.save(update_fields=["is_active", "suspended_at"])
    if not active:
        sessions_end_all(user=user, reason=SessionEndReason.SUSPENDED)
    record(
        event=Event.ACCOUNT_REACTIVATED if active else Event.ACCOUNT_SUSPENDED,
        actor=actor,
        target=user,
        meta=meta,
    )
    return user


# --- Login: password, then second factor ----------------------------------------------------


def login_password_check(
    *, email: str, password: str, meta: RequestMeta, device_cookie: str | None = None
) -> User:
    """First step of the login. Raises ``Throttled`` or ``InvalidCredentials`` (one message
    whether the address exists, is suspended or the password is wrong)."""
    email = normalize_email(email)
    known = User.objects.filter(email=email).only("id", "email").first()
    trusted = throttling.device_cookie_trusted(
        value=device_cookie, user_id=known.pk if known else None
    )
    try:
        throttling.throttle_check(
            kind=AuthFailureKind.PASSWORD, email=email, ip=meta.ip, trusted_device=trusted
        )
    except throttling.Throttled:
        record(event=Event.LOGIN_THROTTLED, actor=known, meta=meta, extra={"factor": "password"})
        raise
    # ModelBackend hashes a dummy password for unknown addresses, so timing does not tell.
    user = authenticate(username=email, password=password)
    # Failures are committed before the error is raised: they count and stay on record.
    with transaction.atomic():
        if user is None:
            throttling.throttle_fail(kind=AuthFailureKind.PASSWORD, email=email, ip=meta.ip)
            record(
                event=Event.LOGIN_FAILED,
                actor=known,
                meta=meta,
                extra={"factor": "password", "known_account": known is not None},
            )
        else:
            throttling.throttle_clear(kind=AuthFailureKind.PASSWORD, email=email, ip=meta.ip)
            record(event=Event.LOGIN_SUCCEEDED, actor=user, meta=meta, extra={"factor": "password"})
    if user is None:
        raise InvalidCredentials(_("Adresse ou mot de passe incorrect."))
    return user


def has_confirmed_totp(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def second_factor_verify(*, user: User, code: str, meta: RequestMeta):
    """Second step: a code from the authenticator app, or a backup code. Returns the device
    that accepted it. A code is accepted once only (the TOTP step is remembered)."""
    code = "".join(code.split())
    try:
        throttling.throttle_check(kind=AuthFailureKind.CODE, email=user.email, ip=meta.ip)
    except throttling.Throttled:
        record(event=Event.LOGIN_THROTTLED, actor=user, meta=meta, extra={"factor": "code"})
        raise
    with transaction.atomic():
        device = _matching_device(user=user, code=code)
        if device is None:
            throttling.throttle_fail(kind=AuthFailureKind.CODE, email=user.email, ip=meta.ip)
            record(event=Event.SECOND_FACTOR_FAILED, actor=user, meta=meta)
        else:
            throttling.throttle_clear(kind=AuthFailureKind.CODE, email=user.email, ip=meta.ip)
            is_backup = isinstance(device, BackupCodeDevice)
            completed = record(
                event=Event.BACKUP_CODE_USED if is_backup else Event.SECOND_FACTOR_SUCCEEDED,
                actor=user,
                meta=meta,
                extra={"device": device.persistent_id}
                | ({"remaining": device.remaining} if is_backup else {}),
            )
            _suspicious_login_check_on_commit(user_id=user.pk, completed_event_id=completed.pk)
    if device is None:
        raise InvalidCode(_("Code incorrect ou déjà utilisé."))
    return device


def _suspicious_login_check_on_commit(*, user_id: int, completed_event_id: int) -> None:
    """Once the login is committed, a task tells the user if it looks unusual (new device or
    address, failures before it): see ``notices.suspicious_login_email_send``."""
    from apps.accounts.tasks import notify_suspicious_login

    transaction.on_commit(
        lambda: notify_suspicious_login.delay(user_id, completed_event_id), robust=True
    )


def _matching_device(*, user: User, code: str):
    """The device that accepts ``code`` (consuming it), or None. Six digits are an
    authenticator code; anything else is tried as a backup code."""
    model = TOTPDevice if code.isdigit() and len(code) == 6 else BackupCodeDevice
    for candidate in model.objects.select_for_update().filter(user=user, confirmed=True):
        if candidate.verify_token(code):
            return candidate
    return None


def second_factor_failures_exhausted(*, user: User, meta: RequestMeta) -> bool:
    """Whether this pending login has used up its code attempts (the user must start again)."""
    try:
        throttling.throttle_check(kind=AuthFailureKind.CODE, email=user.email, ip=meta.ip)
    except throttling.Throttled:
        return True
    return False


# --- Second factor enrolment and backup codes -------------------------------------------------


def new_totp_secret() -> str:
    """A fresh 160-bit secret, base32 as authenticator apps show it."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def totp_device_start(*, user: User, secret: str | None = None, name: str = "authenticator"):
    """An unconfirmed authenticator for ``user`` (replacing any earlier unconfirmed one)."""
    secret = secret or new_totp_secret()
    try:
        key = base64.b32decode(secret.replace(" ", "").upper() + "=" * (-len(secret) % 8))
    except ValueError as exc:
        raise AccountError(_("Secret TOTP invalide (base32 attendu).")) from exc
    if len(key) < 10:
        raise AccountError(_("Secret TOTP trop court (80 bits au moins)."))
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name=name, key=key.hex(), confirmed=False)


def totp_secret_base32(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode().rstrip("=")


def totp_device_confirm(
    *, user: User, device_id: int, code: str, meta: RequestMeta
) -> tuple[TOTPDevice, list[str]]:
    """Confirm a new authenticator with a code it produced. The user's previous authenticators
    are removed; if they had no backup codes yet, ten are made (returned, shown once)."""
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, pk=device_id, confirmed=False)
            .first()
        )
        if device is None:
            raise InvalidCode(_("Cette inscription a expiré : recommencez."))
        verified = device.verify_token("".join(code.split()))
        if not verified:
            record(
                event=Event.SECOND_FACTOR_FAILED, actor=user, meta=meta, extra={"enrolment": True}
            )
    if not verified:
        raise InvalidCode(_("Code incorrect : vérifiez l'heure de votre téléphone et réessayez."))
    return _totp_device_activate(user=user, device=device, meta=meta)


@transaction.atomic
def _totp_device_activate(
    *, user: User, device: TOTPDevice, meta: RequestMeta
) -> tuple[TOTPDevice, list[str]]:
    replaced = TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk)
    re_enrolment = replaced.exists()
    replaced.delete()
    device.confirmed = True
    device.name = "authenticator"
    device.save(update_fields=["confirmed", "name"])
    codes = []
    if not BackupCodeDevice.objects.filter(user=user, codes__used_at__isnull=True).exists():
        codes = _backup_codes_replace(user=user)
    record(
        event=Event.SECOND_FACTOR_ENROLLED,
        actor=user,
        meta=meta,
        extra={"re_enrolment": re_enrolment, "backup_codes_made": bool(codes)},
    )
    return device, codes


def _new_backup_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(5)).decode().lower()  # 40 bits, 8 characters
    return f"{raw[:4]}-{raw[4:]}"


def _backup_codes_replace(*, user: User) -> list[str]:
    BackupCodeDevice.objects.filter(user=user).delete()
    device = BackupCodeDevice.objects.create(user=user, name="backup", confirmed=True)
    codes = [_new_backup_code() for _ in range(settings.BACKUP_CODE_COUNT)]
    BackupCode.objects.bulk_create(
        BackupCode(device=device, code_hash=backup_code_digest(code)) for code in codes
    )
    return codes


@transaction.atomic
def backup_codes_regenerate(*, user: User, meta: RequestMeta) -> list[str]:
    """Ten new backup codes; the old ones stop working."""
    codes = _backup_codes_replace(user=user)
    record(event=Event.BACKUP_CODES_REGENERATED, actor=user, meta=meta)
    return codes


@transaction.atomic
def second_factor_reset_by_staff(
    *, user: User, actor: User, meta: RequestMeta | None = None
) -> None:
    """Staff remove a user's authenticator and backup codes (lost phone). The user's sessions
    end; their next login leads through enrolment; they are told by e-mail."""
    from apps.accounts.tasks import notify_second_factor_reset

    TOTPDevice.objects.filter(user=user).delete()
    BackupCodeDevice.objects.filter(user=user).delete()
    sessions_end_all(user=user, reason=SessionEndReason.SECOND_FACTOR_RESET)
    record(event=Event.SECOND_FACTOR_RESET_BY_STAFF, actor=actor, target=user, meta=meta)
    transaction.on_commit(lambda: notify_second_factor_reset.delay(user.pk), robust=True)


# --- Passwords ----------------------------------------------------------------------------------


@transaction.atomic
def password_change(*, user: User, new_password: str, meta: RequestMeta) -> None:
    """Change the password and end every other session of the user."""
    user.set_password(new_password)
    user.save(update_fields=["password"])
    sessions_end_all(
        user=user, reason=SessionEndReason.PASSWORD_CHANGED, keep_session_key=meta.session_key
    )
    record(event=Event.PASSWORD_CHANGED, actor=user, meta=meta)


@transaction.atomic
def password_reset_complete(*, user: User, meta: RequestMeta) -> None:
    """Called once the reset form saved the new password: every session ends. The next login
    still asks for the second factor."""
    sessions_end_all(user=user, reason=SessionEndReason.PASSWORD_CHANGED)
    record(event=Event.PASSWORD_RESET_COMPLETED, actor=user, meta=meta)


def password_reset_requested(*, email: str, meta: RequestMeta) -> None:
    user = User.objects.filter(email=normalize_email(email), is_active=True).first()
    if user is not None:
        record(event=Event.PASSWORD_RESET_REQUESTED, actor=user, meta=meta)


# --- Sessions -----------------------------------------------------------------------------------


@transaction.atomic
def session_start(*, user: User, meta: RequestMeta) -> UserSession:
    return UserSession.objects.create(
        user=user, session_key=meta.session_key, ip=meta.ip, user_agent=meta.user_agent
    )


def session_rekey(*, old_key: str, new_key: str) -> None:
    """The session key changed (privilege change): follow it."""
    UserSession.objects.filter(session_key=old_key).update(session_key=new_key)


def session_touch(*, session_key: str, now: datetime) -> None:
    UserSession.objects.filter(session_key=session_key, ended_at__isnull=True).update(
        last_seen_at=now
    )


@transaction.atomic
def session_end(
    *,
    user_session: UserSession,
    reason: str,
    actor: User | None = None,
    meta: RequestMeta | None = None,
) -> None:
    """End one session: its Django session row is deleted, so its cookie is worthless."""
    if user_session.ended_at is not None:
        return
    user_session.ended_at = timezone.now()
    user_session.end_reason = reason
    user_session.save(update_fields=["ended_at", "end_reason"])
    Session.objects.filter(session_key=user_session.session_key).delete()
    event = {
        SessionEndReason.LOGOUT: Event.LOGOUT,
        SessionEndReason.IDLE: Event.SESSION_EXPIRED,
        SessionEndReason.ABSOLUTE: Event.SESSION_EXPIRED,
    }.get(reason, Event.SESSION_REVOKED)
    record(
        event=event,
        actor=actor or user_session.user,
        target=user_session,
        meta=meta,
        extra={"reason": str(reason)},
    )


def sessions_end_all(
    *,
    user: User,
    reason: str,
    keep_session_key: str | None = None,
    actor: User | None = None,
    meta: RequestMeta | None = None,
) -> int:
    """End every active session of ``user`` but ``keep_session_key``'s."""
    active = UserSession.objects.filter(user=user, ended_at__isnull=True).select_related("user")
    if keep_session_key:
        active = active.exclude(session_key=keep_session_key)
    count = 0
    for user_session in active:
        session_end(user_session=user_session, reason=reason, actor=actor, meta=meta)
        count += 1
    return count


def sessions_cleanup(*, now: datetime | None = None) -> int:
    """Mark as ended the sessions whose limits passed without a request to notice it, and purge
    expired Django sessions and old throttle rows. Run by Celery beat."""
    now = now or timezone.now()
    idle_before = now - settings.SESSION_IDLE_TIMEOUT
    absolute_before = now - settings.SESSION_ABSOLUTE_TIMEOUT
    ended = 0
    stale = UserSession.objects.filter(ended_at__isnull=True, last_seen_at__lt=idle_before)
    for user_session in stale.select_related("user").iterator():
        reason = (
            SessionEndReason.ABSOLUTE
            if user_session.created_at < absolute_before
            else SessionEndReason.IDLE
        )
        session_end(user_session=user_session, reason=reason)
        ended += 1
    too_old = UserSession.objects.filter(ended_at__isnull=True, created_at__lt=absolute_before)
    for user_session in too_old.select_related("user").iterator():
        session_end(user_session=user_session, reason=SessionEndReason.ABSOLUTE)
        ended += 1
    Session.objects.filter(expire_date__lt=now).delete()
    throttling.throttle_purge(older_than=now - settings.THROTTLE_WINDOW * 4)
    return ended
