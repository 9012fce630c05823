import hmac
import uuid
from hashlib import sha256

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_otp.models import Device, ThrottlingMixin, TimestampMixin

from apps.accounts.nomenclatures import CIVILITY_CHOICES, PROFESSION_CHOICES, PROFESSIONS
from apps.accounts.validators import validate_idnat, validate_specialty_code


class Domain(models.Model):
    """An MSSanté domain this operator hosts (e.g. ``pro.example.mssante.fr``)."""

    name = models.CharField(_("nom de domaine"), max_length=253, unique=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    is_active = models.BooleanField(_("actif"), default=True)
    created_at = models.DateTimeField(_("créé le"), default=timezone.now)

    class Meta:
        verbose_name = _("domaine opérateur")
        verbose_name_plural = _("domaines opérateur")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(name=models.functions.Lower("name")), name="domain_name_lowercase"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


def normalize_email(email: str) -> str:
    """Addresses are compared case-insensitively: stored lower-case, trimmed."""
    return email.strip().lower()


class User(AbstractBaseUser, PermissionsMixin):
    """A health professional (or a staff member of the operator), who logs in with the
    MSSanté address of their personal mailbox."""

    email = models.EmailField(_("adresse MSSanté"), max_length=254, unique=True)
    domain = models.ForeignKey(
        Domain,
        verbose_name=_("domaine"),
        on_delete=models.PROTECT,
        related_name="users",
        null=True,
        blank=True,
    )
    civility = models.CharField(_("civilité"), max_length=3, choices=CIVILITY_CHOICES, blank=True)
    first_name = models.CharField(_("prénom"), max_length=150)
    last_name = models.CharField(_("nom"), max_length=150)
    idnat = models.CharField(
        _("identifiant national (IdNat)"),
        max_length=12,
        blank=True,
        validators=[validate_idnat],
        help_text=_("RPPS : 8 suivi de 11 chiffres ; ADELI : 0 suivi de 9 chiffres."),
    )
    profession_code = models.CharField(
        _("profession"), max_length=2, choices=PROFESSION_CHOICES, blank=True
    )
    specialty_code = models.CharField(
        _("spécialité (savoir-faire)"),
        max_length=8,
        blank=True,
        validators=[validate_specialty_code],
    )
    phone = models.CharField(_("téléphone mobile"), max_length=20, blank=True)
    is_active = models.BooleanField(
        _("actif"), default=True, help_text=_("Décocher pour suspendre le compte.")
    )
    is_staff = models.BooleanField(_("personnel de l'opérateur"), default=False)
    date_joined = models.DateTimeField(_("créé le"), default=timezone.now)
    suspended_at = models.DateTimeField(_("suspendu le"), null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["first_name", "last_name"]

    class Meta:
        verbose_name = _("utilisateur")
        verbose_name_plural = _("utilisateurs")
        ordering = ["last_name", "first_name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(email=models.functions.Lower("email")), name="user_email_lowercase"
            ),
            models.UniqueConstraint(
                fields=["idnat"], condition=~Q(idnat=""), name="user_idnat_unique"
            ),
            # A professional belongs to one operator domain and has a national id; staff-only
            # accounts may have neither.
            models.CheckConstraint(
                condition=Q(is_staff=True) | (Q(domain__isnull=False) & ~Q(idnat="")),
                name="user_professional_has_domain_and_idnat",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def get_short_name(self) -> str:
        return self.first_name

    @property
    def display_name(self) -> str:
        prefix = "Dr " if self.civility == "DR" else ("Pr " if self.civility == "PR" else "")
        return f"{prefix}{self.get_full_name()}".strip() or self.email

    @property
    def profession_label(self) -> str:
        return str(PROFESSIONS.get(self.profession_code, ""))


class SessionEndReason(models.TextChoices):
    LOGOUT = "logout", _("déconnexion")
    IDLE = "idle", _("inactivité")
    ABSOLUTE = "absolute", _("durée maximale atteinte")
    REVOKED = "revoked", _("fermée par l'utilisateur")
    PASSWORD_CHANGED = "password", _("mot de passe changé")
    SUSPENDED = "suspended", _("compte suspendu")
    SECOND_FACTOR_RESET = "otp_reset", _("second facteur réinitialisé")


class UserSession(models.Model):
    """One logged-in browser session: what the user sees on their sessions page.

    Django's session row holds the data; this row holds who, where from and since when, so a
    session can be listed, expired with a reason, and revoked from another device.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="user_sessions"
    )
    session_key = models.CharField(max_length=40, unique=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=12, choices=SessionEndReason.choices, blank=True)

    class Meta:
        verbose_name = _("session")
        verbose_name_plural = _("sessions")
        indexes = [models.Index(fields=["user", "ended_at"], name="usersession_user_active")]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.public_id}"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


def backup_code_digest(code: str) -> str:
    """Backup codes are stored as a keyed hash: a database leak does not reveal them."""
    normalized = "".join(code.split()).replace("-", "").lower()
    return hmac.new(settings.SECRET_KEY.encode(), normalized.encode(), sha256).hexdigest()


class BackupCodeDevice(TimestampMixin, ThrottlingMixin, Device):
    """The ten single-use backup codes of a user, as a django-otp device."""

    class Meta(Device.Meta):
        verbose_name = _("codes de secours")
        verbose_name_plural = _("codes de secours")

    def get_throttle_factor(self) -> int:
        return 0  # attempts are limited by apps/accounts/throttling.py

    def verify_token(self, token: str) -> bool:
        allowed, _info = self.verify_is_allowed()
        if not allowed:
            return False
        digest = backup_code_digest(str(token))
        used = self.codes.filter(code_hash=digest, used_at__isnull=True).update(
            used_at=timezone.now()
        )
        if used:
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
            return True
        self.throttle_increment(commit=True)
        return False

    @property
    def remaining(self) -> int:
        return self.codes.filter(used_at__isnull=True).count()


class BackupCode(models.Model):
    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "code_hash"], name="backupcode_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}/{self.pk}"


class AuthFailure(models.Model):
    """One failed password or code attempt, counted by the brute-force throttle."""

    class Kind(models.TextChoices):
        PASSWORD = "password", _("mot de passe")
        CODE = "code", _("code")

    kind = models.CharField(max_length=8, choices=Kind.choices)
    # A keyed hash of the submitted address, existing or not: users sometimes type their
    # password in the address field, and it must not sit in clear in this table.
    account_key = models.CharField(max_length=64)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["account_key", "created_at"], name="authfailure_account"),
            models.Index(fields=["ip", "created_at"], name="authfailure_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.created_at:%Y-%m-%d %H:%M}"
