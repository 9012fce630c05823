"""Reference codes of the national directory (RPPS nomenclatures), and the IdNat rules."""

import re

from django.utils.translation import gettext_lazy as _

# TRE_G15 "profession de santé": the professions registered in RPPS/ADELI.
PROFESSIONS = {
    "10": _("Médecin"),
    "21": _("Pharmacien"),
    "26": _("Audioprothésiste"),
    "28": _("Opticien-lunetier"),
    "40": _("Chirurgien-dentiste"),
    "50": _("Sage-femme"),
    "60": _("Infirmier"),
    "69": _("Infirmier psychiatrique"),
    "70": _("Masseur-kinésithérapeute"),
    "80": _("Pédicure-podologue"),
    "81": _("Orthoprothésiste"),
    "82": _("Podo-orthésiste"),
    "83": _("Orthopédiste-orthésiste"),
    "84": _("Oculariste"),
    "85": _("Épithésiste"),
    "86": _("Technicien de laboratoire médical"),
    "91": _("Orthophoniste"),
    "92": _("Orthoptiste"),
    "94": _("Ergothérapeute"),
    "95": _("Diététicien"),
    "96": _("Psychomotricien"),
    "98": _("Manipulateur ERM"),
}
PROFESSION_CHOICES = sorted(PROFESSIONS.items(), key=lambda item: item[0])

CIVILITIES = {"M": _("Monsieur"), "MME": _("Madame"), "DR": _("Docteur"), "PR": _("Professeur")}
CIVILITY_CHOICES = list(CIVILITIES.items())

# Savoir-faire codes look like SCD01 (dentists), SM54 (doctors), etc.
SPECIALTY_RE = re.compile(r"^[A-Z]{1,4}[0-9]{2,3}$")

ID_TYPE_ADELI = "0"
ID_TYPE_RPPS = "8"


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def idnat_error(value: str) -> str | None:
    """Why ``value`` is not a valid professional IdNat, or None if it is.

    RPPS: ``8`` + 11 digits whose last digit is a Luhn key. ADELI: ``0`` + 9 digits.
    """
    if not value.isascii() or not value.isdigit():
        return _("L'identifiant national ne contient que des chiffres.")
    if value.startswith(ID_TYPE_RPPS):
        if len(value) != 12:
            return _("Un identifiant RPPS s'écrit 8 suivi de 11 chiffres.")
        if not luhn_valid(value[1:]):
            return _("Ce numéro RPPS n'est pas valide (clé de contrôle incorrecte).")
        return None
    if value.startswith(ID_TYPE_ADELI):
        if len(value) != 10:
            return _("Un identifiant ADELI s'écrit 0 suivi de 9 chiffres.")
        return None
    return _("L'identifiant national commence par 8 (RPPS) ou 0 (ADELI).")
