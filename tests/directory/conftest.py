from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.directory.extracts import ACTIVITY_HEADER, MAILBOX_HEADER


def activity(idnat: str, last: str, first: str, **extra: str) -> dict:
    values = {
        "Type d'identifiant PP": idnat[0],
        "Identifiant PP": idnat[1:],
        "Identification nationale PP": idnat,
        "Code civilité d'exercice": "DR",
        "Nom d'exercice": last,
        "Prénom d'exercice": first,
        "Code profession": "40",
        "Libellé profession": "Chirurgien-Dentiste",
        "Code postal (coord. structure)": "69003",
        "Libellé commune (coord. structure)": "Lyon",
        "Code Département (structure)": "69",
    }
    values.update(extra)
    return values


def mailbox(address: str, idnat: str = "", last: str = "", first: str = "", **extra: str) -> dict:
    values = {
        "Type de BAL": "PER" if idnat else "ORG",
        "Adresse BAL": address,
        "Identification nationale PP": idnat,
        "Nom d'exercice": last,
        "Prénom d'exercice": first,
        "Civilité d'exercice": "DR" if idnat else "",
        "Libellé Profession": "Chirurgien-Dentiste" if idnat else "",
        "L6LIGNEACHEMINEMENT structure BAL": "69003 LYON",
    }
    values.update(extra)
    return values


@dataclass
class Pair:
    activities: Path
    mssante: Path


def write_pair(folder: Path, activities: list[dict], mailboxes: list[dict], tag: str = "") -> Pair:
    folder.mkdir(parents=True, exist_ok=True)
    act = folder / f"PS_LibreAcces_Personne_activite_20261128{tag}.txt"
    bal = folder / f"Extraction_Correspondance_MSSante_20261128{tag}.txt"
    with act.open("w", encoding="utf-8") as out:
        out.write("|".join(ACTIVITY_HEADER) + "|\n")
        for row in activities:
            out.write("|".join(row.get(h, "") for h in ACTIVITY_HEADER) + "|\n")
    with bal.open("w", encoding="utf-8") as out:
        out.write("|".join(MAILBOX_HEADER) + "|\n")
        for row in mailboxes:
            out.write("|".join(row.get(h, "") for h in MAILBOX_HEADER) + "|\n")
    return Pair(act, bal)


LEFEVRE = "810001045367"
DUPONT = "801234560801"
MOREL = "899700367909"


@pytest.fixture
def small_pair(tmp_path) -> Pair:
    return write_pair(
        tmp_path / "v1",
        [
            activity(LEFEVRE, "LEFÈVRE", "Hélène", **{
                "Code type savoir-faire": "S", "Code savoir-faire": "SCD01",
                "Libellé savoir-faire": "Orthopédie dento-faciale",
                "Raison sociale site": "Cabinet du Parc",
            }),
            activity(LEFEVRE, "LEFÈVRE", "Hélène", **{
                "Raison sociale site": "Centre dentaire de Bourg",
                "Code postal (coord. structure)": "01000",
                "Libellé commune (coord. structure)": "Bourg-en-Bresse",
                "Code Département (structure)": "01",
            }),
            activity(DUPONT, "DUPONT", "Marie", **{
                "Code profession": "10", "Libellé profession": "Médecin",
                "Code postal (coord. structure)": "75011",
                "Libellé commune (coord. structure)": "Paris",
                "Code Département (structure)": "75",
            }),
            activity(MOREL, "MOREL", "Claire"),
        ],
        [
            mailbox("helene.lefevre@chirurgien-dentiste.mssante.fr", LEFEVRE, "LEFÈVRE", "Hélène"),
            mailbox("claire.morel@chirurgien-dentiste.mssante.fr", MOREL, "MOREL", "Claire"),
            mailbox(
                "secretariat.radiologie@ch-lyon.mssante.fr",
                **{"Raison Sociale structure BAL": "CH de Lyon",
                   "Service de rattachement": "Radiologie"},
            ),
        ],
    )  # fmt: skip
