"""Patients reached through Mon espace santé — pure functions, no database.

A patient's MSSanté address is ``<INS>@<MSSANTE_PATIENT_DOMAIN>`` (``patient.mssante.fr``), built
only from a qualified INS. The INS ("matricule INS") is the patient's NIR, or a NIA (numéro
d'identification d'attente) for someone not yet registered: both have the NIR's shape, 13
characters and a 2-digit key, 15 in all:

    S  AA  MM  DD  CCC  OOO  KK
    |  |   |   |   |    |    key: 97 − (the 13 first characters as a number) mod 97
    |  |   |   |   |    order number
    |  |   |   |   commune of birth (or country, with department 99)
    |  |   |   department of birth: 2 digits, or 2A / 2B (Corsica)
    |  |   month of birth (pseudo-months exist: not checked)
    |  year of birth
    sex / kind: 1, 2 (NIR, NIA); 3, 4, 7, 8 (provisional and waiting numbers)

For Corsica the key is computed with 2A read as 19 and 2B as 18 (the NIR rule). A NIA has the
same key, so the key is checked for every INS. The patient's messages carry the headers of the
MSSanté rules (``X-MSS-INS``, ``X-MSS-MES``); read receipts are always asked for and the
patient cannot refuse them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError

INS_LENGTH = 15
_SEPARATORS = re.compile(r"[\s.\-]+")
_INS_SHAPE = re.compile(r"^\d{5}(?:\d{2}|2A|2B)\d{8}$")
_CORSICA = {"2A": "19", "2B": "18"}
FIRST_DIGITS = "123478"

# Headers of the MSSanté rules (MSSANTE.md §2 and §4).
HEADER_INS = "X-MSS-INS"  # "O": the message carries a qualified INS
HEADER_MES = "X-MSS-MES"  # "FIN": the patient may not reply


class InsInvalid(ApplicationError):
    """The text is not a valid INS; ``message`` says why, in French."""


def ins_normalise(value: str) -> str:
    """What was typed, without spaces, dots or dashes, in capitals (``2a`` → ``2A``)."""
    return _SEPARATORS.sub("", value or "").upper()


def ins_key(body: str) -> int:
    """The key of the 13 first characters of an INS (Corsican 2A/2B handled)."""
    department = body[5:7]
    digits = body[:5] + _CORSICA.get(department, department) + body[7:13]
    return 97 - int(digits) % 97


def ins_validate(value: str) -> str:
    """The INS in ``value`` (normalised), or ``InsInvalid`` with the reason."""
    ins = ins_normalise(value)
    if not ins:
        raise InsInvalid(_("Indiquez l'INS du patient."))
    if len(ins) != INS_LENGTH:
        raise InsInvalid(_("L'INS compte 15 caractères (%(count)d saisis).") % {"count": len(ins)})
    if not ins.isascii() or not ins.isalnum():
        raise InsInvalid(_("L'INS ne contient que des chiffres."))
    if not (ins.isdigit() or _INS_SHAPE.match(ins)):
        raise InsInvalid(
            _(
                "L'INS ne contient que des chiffres (seuls 2A et 2B sont admis, à la place du "
                "département de naissance, pour la Corse)."
            )
        )
    if ins[0] not in FIRST_DIGITS:
        raise InsInvalid(_("L'INS doit commencer par 1, 2, 3, 4, 7 ou 8."))
    if int(ins[13:]) != ins_key(ins[:13]):
        raise InsInvalid(
            _("La clé de l'INS (les deux derniers chiffres) est incorrecte : vérifiez la saisie.")
        )
    return ins


def ins_is_valid(value: str) -> bool:
    try:
        ins_validate(value)
    except InsInvalid:
        return False
    return True


def patient_domain() -> str:
    return settings.MSSANTE_PATIENT_DOMAIN.strip().lower().rstrip(".")


def patient_address(ins: str) -> str:
    """``<INS>@patient.mssante.fr`` for a valid INS (``InsInvalid`` otherwise)."""
    return f"{ins_validate(ins)}@{patient_domain()}"


def is_patient_address(address: str) -> bool:
    """Whether ``address`` is in the patients' domain (valid INS or not)."""
    _local, at, domain = (address or "").strip().rpartition("@")
    return bool(at) and domain.strip().lower().rstrip(".") == patient_domain()


def ins_from_address(address: str) -> str:
    """The INS of a patient's address; ``""`` for any other address or an invalid INS."""
    if not is_patient_address(address):
        return ""
    local = address.strip().rpartition("@")[0]
    return local.upper() if ins_is_valid(local) and len(local) == INS_LENGTH else ""


@dataclass(frozen=True)
class Patient:
    """The patient a message is written to, as the compose form gives them."""

    ins: str
    family_name: str = ""
    given_names: str = ""
    birth_date: date | None = None
    no_reply: bool = False  # "le patient ne peut pas répondre"

    @property
    def address(self) -> str:
        return patient_address(self.ins)

    @property
    def display_name(self) -> str:
        """``Marie Louise DUPONT`` (the display name of the address in the To header)."""
        return " ".join(
            part for part in (self.given_names.strip(), self.family_name.strip().upper()) if part
        )


def patient_headers(*, no_reply: bool) -> dict[str, str]:
    """The extra headers of a message to a patient: a qualified INS is present (its address is
    built from one); with ``no_reply``, the patient cannot answer."""
    headers = {HEADER_INS: "O"}
    if no_reply:
        headers[HEADER_MES] = "FIN"
    return headers


@dataclass(frozen=True)
class PatientBadge:
    """What the lists and conversations show instead of a patient's raw address."""

    ins: str
    family_name: str = ""
    given_names: str = ""
    birth_date: date | None = None

    @property
    def name(self) -> str:
        return " ".join(
            part for part in (self.family_name.strip().upper(), self.given_names.strip()) if part
        )

    @property
    def address(self) -> str:
        """The patient's address, in lower case (to compare with stored ones)."""
        return f"{self.ins}@{patient_domain()}".lower()
