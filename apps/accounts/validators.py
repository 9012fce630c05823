from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from apps.accounts.nomenclatures import SPECIALTY_RE, idnat_error


def validate_idnat(value: str) -> None:
    error = idnat_error(value)
    if error:
        raise ValidationError(error, code="invalid_idnat")


def validate_specialty_code(value: str) -> None:
    if value and not SPECIALTY_RE.match(value):
        raise ValidationError(
            _("Code de spécialité inconnu (exemple : SCD01, SM54)."), code="invalid_specialty"
        )


class MaximumLengthValidator:
    """Long passphrases are welcome; an upper bound only stops abuse of the hasher."""

    def __init__(self, max_length: int = 128) -> None:
        self.max_length = max_length

    def validate(self, password: str, user=None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                ngettext(
                    "Ce mot de passe dépasse %(max)d caractère.",
                    "Ce mot de passe dépasse %(max)d caractères.",
                    self.max_length,
                )
                % {"max": self.max_length},
                code="password_too_long",
            )

    def get_help_text(self) -> str:
        return _("Au plus %(max)d caractères ; une phrase de passe est bienvenue.") % {
            "max": self.max_length
        }


class FrenchCommonPasswordValidator:
    """Refuses passwords common among French users (breached-list style), which Django's
    English-centred list misses. Compared case-insensitively, ignoring spaces."""

    path = Path(__file__).resolve().parent / "data" / "common-passwords-fr.txt"
    _passwords: frozenset[str] | None = None

    @classmethod
    def passwords(cls) -> frozenset[str]:
        if cls._passwords is None:
            lines = cls.path.read_text(encoding="utf-8").splitlines()
            cls._passwords = frozenset(
                line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
            )
        return cls._passwords

    def validate(self, password: str, user=None) -> None:
        folded = "".join(password.lower().split())
        if folded in self.passwords() or password.lower().strip() in self.passwords():
            raise ValidationError(
                _("Ce mot de passe est trop courant."), code="password_too_common"
            )

    def get_help_text(self) -> str:
        return _("Pas un mot de passe courant.")
