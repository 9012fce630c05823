"""Synthetic Annuaire Santé extracts in the exact published format (MSSANTE.md §5).

``write_sample(people=…, out_dir=…)`` writes a ``PS_LibreAcces_Personne_activite_<stamp>.txt``
and an ``Extraction_Correspondance_MSSante_<stamp>.txt`` (or the two official zips) that an
importer cannot tell from the real files by their shape: published headers (56, 52 or 48
columns), ``|`` separators and a trailing ``|`` on every line, UTF-8, LF line ends, ids as
strings with their leading zeros, upper-case surnames (accents kept) and upper-case,
unaccented structure and street names as in the real file.

Everything is invented: names drawn from common French names, real towns and departments,
Luhn-valid RPPS numbers, SIRET numbers with valid keys, real nomenclature codes (professions,
savoir-faire, modes, sectors as in MSSANTE.md, pharmacists' sections, fonctions, genres).
Commune (INSEE) codes, FINESS numbers, structure ids and phone numbers are only well-shaped.

The output is a pure function of the arguments (same seed, same bytes). Rows are written as
they are drawn, so memory stays flat whatever ``people`` is (the only tables that grow are
bounded by the name lists, not by the number of rows). About 1.3 activity rows per person
(≈25% have 2 or 3 activities, ≈3% none: one row with empty structure columns), and about
``mailbox_ratio`` × 1.17 mailbox rows per person (PER mailboxes, a few second ones, ORG
mailboxes of hospitals and practices, and — as in the real file — a few addresses twice).
"""

import os
import random
import re
import unicodedata
import zipfile
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import BinaryIO, NamedTuple

from apps.directory.extracts import ACTIVITY_GENERATIONS, MAILBOX_HEADER

GENERATIONS = tuple(sorted(ACTIVITY_GENERATIONS))
STAMP_RE = re.compile(r"^[0-9]{12}$")
ACTIVITIES_PREFIX = "PS_LibreAcces_Personne_activite"
ACTIVITIES_ZIP_PREFIX = "PS_LibreAcces"
MSSANTE_PREFIX = "Extraction_Correspondance_MSSante"
FLUSH_EVERY = 2000  # rows buffered before a write


@dataclass(frozen=True, slots=True)
class SampleFiles:
    activities_path: Path
    mssante_path: Path
    activity_rows: int
    mailbox_rows: int


# --- Nomenclatures -------------------------------------------------------------------------------


class Profession(NamedTuple):
    code: str
    label: str
    weight: float  # roughly the real head counts, in thousands
    female: float  # share of women
    adeli: float  # share still registered in ADELI (id type 0)
    liberal: float  # share of libéral activities
    domain: str  # the profession's Mailiz domain, or ""
    authority: str  # Autorité d'enregistrement
    doctor_title: bool  # "DR" as civilité d'exercice


PROFESSIONS: tuple[Profession, ...] = (
    Profession("10", "Médecin", 235, 0.50, 0, 0.55, "medecin.mssante.fr", "CNOM/CNOM/CNOM", True),
    Profession(
        "21", "Pharmacien", 74, 0.68, 0, 0.35, "pharmacien.mssante.fr", "CNOP/CNOP/CNOP", False
    ),
    Profession(
        "40",
        "Chirurgien-Dentiste",
        45,
        0.50,
        0,
        0.88,
        "chirurgien-dentiste.mssante.fr",
        "ONCD/ONCD/ONCD",
        True,
    ),
    Profession(
        "50", "Sage-Femme", 24, 0.97, 0, 0.30, "sage-femme.mssante.fr", "CNOSF/CNOSF/CNOSF", False
    ),
    Profession(
        "60", "Infirmier", 600, 0.86, 0.08, 0.20, "infirmier.mssante.fr", "ONI/ONI/ONI", False
    ),
    Profession(
        "70",
        "Masseur-Kinésithérapeute",
        100,
        0.50,
        0,
        0.85,
        "masseur-kinesitherapeute.mssante.fr",
        "CNOMK/CNOMK/CNOMK",
        False,
    ),
    Profession("80", "Pédicure-Podologue", 15, 0.70, 0, 0.95, "", "ONPP/ONPP/ONPP", False),
    Profession("91", "Orthophoniste", 27, 0.97, 0.5, 0.85, "", "ARS/ARS/ARS", False),
    Profession("92", "Orthoptiste", 6, 0.85, 0.5, 0.55, "", "ARS/ARS/ARS", False),
    Profession("26", "Audioprothésiste", 5, 0.45, 0.5, 0.30, "", "ARS/ARS/ARS", False),
    Profession("28", "Opticien-Lunetier", 40, 0.55, 0.5, 0.15, "", "ARS/ARS/ARS", False),
    Profession("94", "Ergothérapeute", 14, 0.85, 0.5, 0.15, "", "ARS/ARS/ARS", False),
    Profession("95", "Diététicien", 12, 0.90, 0.5, 0.40, "", "ARS/ARS/ARS", False),
    Profession("96", "Psychomotricien", 14, 0.88, 0.5, 0.25, "", "ARS/ARS/ARS", False),
    Profession("98", "Manipulateur ERM", 37, 0.70, 0.5, 0.02, "", "ARS/ARS/ARS", False),
)

# Doctors' spécialités ordinales (type S), weighted (TRE_R38 codes and labels).
DOCTOR_SKILLS: tuple[tuple[str, str, float], ...] = (
    ("SM54", "Médecine générale", 30),
    ("SM26", "Qualifié en Médecine générale", 14),
    ("SM53", "Spécialiste en Médecine générale", 9),
    ("SM02", "Anesthésie-réanimation", 5),
    ("SM04", "Cardiologie et Maladies vasculaires", 3.5),
    ("SM42", "Psychiatrie", 4),
    ("SM40", "Pédiatrie", 3.5),
    ("SM44", "Radio-diagnostic", 3.5),
    ("SM38", "Ophtalmologie", 2.5),
    ("SM20", "Gynécologie-obstétrique", 2.5),
    ("SM59", "Médecine d'urgence", 2),
    ("SM25", "Médecine du travail", 2),
    ("SM15", "Dermatologie et vénéréologie", 1.5),
    ("SM24", "Gastro-entérologie et Hépatologie", 1.5),
    ("SM32", "Neurologie", 1.2),
    ("SM41", "Pneumologie", 1.2),
    ("SM48", "Rhumatologie", 1),
    ("SM34", "ORL et Chirurgie cervico-faciale", 1),
    ("SM08", "Chirurgie orthopédique et Traumatologie", 1.3),
    ("SM14", "Chirurgie viscérale et digestive", 1),
    ("SM12", "Chirurgie urologique", 0.6),
    ("SM27", "Médecine interne", 1),
    ("SM18", "Gériatrie", 1),
    ("SM03", "Biologie médicale", 0.8),
    ("SM30", "Néphrologie", 0.6),
    ("SM36", "Oncologie, option médicale", 0.6),
    ("SM16", "Endocrinologie et métabolisme", 0.6),
    ("SM19", "Gynécologie médicale", 0.5),
    ("SM43", "Psychiatrie, option enfant et adolescent", 0.5),
    ("SM49", "Santé publique et Médecine sociale", 0.4),
    ("SM58", "Maladies infectieuses et tropicales", 0.3),
    ("SM61", "Médecine vasculaire", 0.3),
    ("SM73", "Médecine cardiovasculaire", 0.4),
    ("SM74", "Radiologie et imagerie médicale", 0.5),
    ("SM29", "Médecine physique et réadaptation", 0.5),
)
# Dentists: most have no ordinal speciality.
DENTIST_SKILLS: tuple[tuple[str, str, float], ...] = (
    ("", "", 90),
    ("SCD01", "Orthopédie dento-faciale", 6),
    ("SCD02", "Chirurgie orale", 2),
    ("SCD03", "Médecine bucco-dentaire", 2),
)
SKILL_TYPE = ("S", "Spécialité ordinale")

CIVILITIES = {"M": "Monsieur", "MME": "Madame", "DR": "Docteur", "PR": "Professeur"}
CATEGORIES = (("C", "Civil", 97.0), ("M", "Militaire", 1.5), ("E", "Etudiant", 1.5))
MODES = {"L": "Libéral", "S": "Salarié", "B": "Bénévole"}
SECTORS = {
    "SA07": "Cabinet individuel",
    "SA08": "Cabinet de groupe",
    "SA05": "Centre de santé",
    "SA01": "Etablissement public de santé",
}
PHARMA_SECTIONS = {
    "A": "Pharmacien titulaire d'officine",
    "D": "Pharmacien adjoint, remplaçant ou gérant",
    "E": "Pharmacien d'Outre-Mer",
    "G": "Pharmacien biologiste",
    "H": "Pharmacien d'établissement de santé",
}
ROLES = {
    "FON-01": "Titulaire de cabinet",
    "FON-02": "Associé dans une société d'exercice (SEL ou SCP)",
    "FON-03": "Titulaire d'officine",
    "FON-05": "Adjoint",
    "FON-17": "Collaborateur",
    "FON-22": "Remplaçant, intérimaire, intermittent",
    "FON-33": "Salarié en poste fixe",
    "FON-48": "Interne",
}
GENRES = {
    "GENR01": "Activité de soin et de pharmacie",
    "GENR02": "Activité de soins ou de pharmacien en tant que remplaçant",
    "GENR04": "Activité non soignante",
}
STREET_TYPES: tuple[tuple[str, str, float], ...] = (
    ("R", "Rue", 50),
    ("AV", "Avenue", 18),
    ("BD", "Boulevard", 8),
    ("PL", "Place", 6),
    ("CHE", "Chemin", 5),
    ("ALL", "Allée", 4),
    ("RTE", "Route", 4),
    ("IMP", "Impasse", 2),
    ("QUAI", "Quai", 1.5),
    ("CRS", "Cours", 1.5),
)
STREETS = (
    "DE LA REPUBLIQUE", "DU GENERAL DE GAULLE", "JEAN JAURES", "VICTOR HUGO", "PASTEUR",
    "DE LA GARE", "DES ECOLES", "DU MARECHAL FOCH", "GAMBETTA", "CARNOT", "NATIONALE",
    "DE LA LIBERATION", "DU 8 MAI 1945", "DU 11 NOVEMBRE", "DES TILLEULS", "DU MOULIN",
    "DE L'EGLISE", "SAINT-MARTIN", "DE PARIS", "JULES FERRY", "ANATOLE FRANCE", "EMILE ZOLA",
    "DES LILAS", "DU STADE", "DE LA MAIRIE", "PAUL BERT", "GEORGES CLEMENCEAU",
    "DU MARECHAL LECLERC", "DE VERDUN", "DES ROSES", "DU PRESIDENT WILSON", "LOUIS PASTEUR",
    "DU CHATEAU", "DE LA PAIX", "DES ACACIAS", "DU COMMERCE", "DE LA POSTE", "ALSACE-LORRAINE",
    "JEAN MOULIN", "DES PRES", "DU PORT", "DE LA FONTAINE", "ARISTIDE BRIAND", "DES JARDINS",
    "DE BELLEVUE", "DU PARC", "ALBERT CAMUS", "DES CHENES", "DE LA LIBERTE", "SADI CARNOT",
    "DU DOCTEUR SCHWEITZER", "MARCEL PAGNOL", "DES VIGNES", "DU CANAL", "PIERRE CURIE",
)  # fmt: skip
PLACES = (
    "RESIDENCE LES JARDINS", "BATIMENT A", "BATIMENT B", "LE CLOS DES VIGNES",
    "CENTRE COMMERCIAL LES ARCADES", "ZONE ARTISANALE", "RESIDENCE DU PARC", "ESPACE SANTE",
    "POLE SANTE", "IMMEUBLE LE CRISTAL",
)  # fmt: skip
HOSPITAL_SERVICES = (
    "radiologie", "cardiologie", "urgences", "pediatrie", "maternite", "pharmacie",
    "laboratoire", "oncologie", "chirurgie", "neurologie", "pneumologie", "gastro-enterologie",
    "geriatrie", "psychiatrie", "medecine-interne", "dermatologie", "ophtalmologie", "orl",
    "rhumatologie", "endocrinologie", "nephrologie", "reanimation", "anesthesie", "imagerie",
    "consultations", "admissions", "dim", "hematologie", "urologie", "orthopedie",
)  # fmt: skip
ORG_PREFIXES = ("secretariat", "service", "accueil", "cs")

# --- Names ---------------------------------------------------------------------------------------

LAST_NAMES = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau",
    "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel",
    "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent",
    "Muller", "Lefebvre", "Faure", "André", "Mercier", "Blanc", "Guérin", "Boyer", "Garnier",
    "Chevalier", "François", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément",
    "Morin", "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson", "Marchand", "Duval",
    "Denis", "Dumont", "Marie", "Lemaire", "Noël", "Meyer", "Dufour", "Meunier", "Brun",
    "Blanchard", "Giraud", "Joly", "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud",
    "Martinez", "Gérard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal",
    "Caron", "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix",
    "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet", "Rolland",
    "Leclercq", "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy", "Guillot", "Hubert", "Berger",
    "Carpentier", "Sanchez", "Dupuis", "Moulin", "Louis", "Deschamps", "Huet", "Vasseur", "Perez",
    "Boucher", "Fleury", "Royer", "Klein", "Jacquet", "Adam", "Paris", "Poirier", "Marty",
    "Aubry", "Guyot", "Carré", "Charles", "Renault", "Charpentier", "Ménard", "Maillard", "Baron",
    "Bertin", "Bailly", "Hervé", "Schneider", "Fernandez", "Le Gall", "Collet", "Léger",
    "Bouvier", "Julien", "Prévost", "Millet", "Perrot", "Daniel", "Le Roux", "Cousin", "Germain",
    "Breton", "Besson", "Langlois", "Rémy", "Le Goff", "Pelletier", "Lévêque", "Perrier",
    "Leblanc", "Barré", "Lebrun", "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob",
    "Monnier", "Michaud", "Rodriguez", "Guichard", "Gillet", "Étienne", "Grondin", "Poulain",
    "Tessier", "Chevallier", "Collin", "Chauvin", "Da Silva", "Bouchet", "Gay", "Lemaître",
    "Bénard", "Maréchal", "Humbert", "Reynaud", "Antoine", "Hoarau", "Perret", "Barthélemy",
    "Cordier", "Pichon", "Lejeune", "Gilbert", "Lamy", "Delaunay", "Pasquier", "Carlier",
    "Laporte", "de La Fontaine", "Le Bihan", "de Villiers", "Lefèvre-Dupont", "Martin-Dubois",
    "Le Floch", "Le Corre", "Guillou", "Cloarec", "Kerbrat", "N'Diaye", "Nguyen", "Diallo",
    "Haddad", "Benali", "Cohen", "Lévy", "Dos Santos", "Ferreira", "Rossi", "Pereira", "Da Costa",
    "Ben Amor", "Traoré", "Camara", "Mendy", "Chevrier", "Bouchard", "Lebon", "Texier", "Jourdan",
    "Hoareau", "Rivet", "Delmas", "Barbe", "Tanguy", "Riou", "Castel", "Bonnefoy", "Vallée",
    "Courtois", "Pages", "Bousquet", "Salmon", "Mahé", "Ollivier", "Le Borgne", "Le Meur",
    "Mangin", "Thibault", "Bourdon", "Brunel", "Hebert", "Laine", "Dumoulin", "Gros", "Devaux",
    "Lacombe", "Toussaint", "Régnier", "Labbé", "Besnard", "Thierry", "Navarro", "Ferrand",
    "Lesage", "Blondel", "Carrière", "Sauvage", "Fabre-Lacoste", "d'Almeida", "de Lattre",
    "Saint-Jean", "Lagarde", "Favre", "Buisson", "Raynaud", "Descamps", "Pons", "Brault",
    "Boutin", "Maillot", "Gomez", "Marin", "Hardy", "Leduc", "Voisin", "Caillaud", "Jolivet",
    "Maurice", "Poulet", "Leconte", "Couturier", "Gilles", "Lamotte", "Rigaud", "Parent",
    "Bigot", "Foucher", "Cartier", "Turpin", "Baudry", "Weiss", "Wagner", "Zimmermann",
    "Koch", "Hoffmann", "Becker", "Ricard", "Giraudeau", "Guillemot", "Le Guen", "Prigent",
)  # fmt: skip
FEMALE_FIRST_NAMES = (
    "Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Sophie", "Christine", "Valérie",
    "Sandrine", "Stéphanie", "Céline", "Véronique", "Anne", "Laurence", "Aurélie", "Julie",
    "Émilie", "Caroline", "Camille", "Claire", "Hélène", "Élodie", "Audrey", "Virginie",
    "Delphine", "Laure", "Charlotte", "Pauline", "Mathilde", "Léa", "Manon", "Chloé", "Emma",
    "Sarah", "Laura", "Marion", "Lucie", "Anaïs", "Noémie", "Clémence", "Justine", "Océane",
    "Inès", "Zoé", "Juliette", "Margaux", "Agathe", "Louise", "Alice", "Jeanne", "Cécile",
    "Agnès", "Béatrice", "Brigitte", "Chantal", "Danielle", "Dominique", "Françoise", "Florence",
    "Gaëlle", "Geneviève", "Josiane", "Karine", "Maëlle", "Mélanie", "Monique", "Muriel",
    "Nadia", "Nadège", "Patricia", "Rachel", "Sabrina", "Séverine", "Solène", "Sonia", "Annie",
    "Anne-Sophie", "Marie-Claire", "Marie-Hélène", "Anne-Laure", "Marie-Pierre", "Fatima",
    "Leïla", "Amandine", "Morgane", "Elsa", "Eva", "Jade", "Lina", "Romane", "Capucine",
    "Bérénice", "Églantine", "Ophélie", "Armelle", "Gwenaëlle", "Maïwenn", "Odile", "Yvette",
    "Ghislaine", "Mireille", "Estelle", "Coralie", "Adèle", "Héloïse", "Alix", "Perrine",
)  # fmt: skip
MALE_FIRST_NAMES = (
    "Jean", "Pierre", "Michel", "Philippe", "Alain", "Nicolas", "Christophe", "Patrick",
    "Daniel", "Stéphane", "Éric", "Frédéric", "Laurent", "Olivier", "David", "Julien",
    "Sébastien", "Thomas", "François", "Jérôme", "Pascal", "Vincent", "Thierry", "Bruno",
    "Guillaume", "Maxime", "Antoine", "Alexandre", "Romain", "Mathieu", "Benoît", "Cédric",
    "Arnaud", "Fabrice", "Franck", "Gilles", "Hervé", "Lionel", "Loïc", "Marc", "Xavier",
    "Yann", "Yves", "Hugo", "Lucas", "Louis", "Gabriel", "Léo", "Raphaël", "Arthur", "Jules",
    "Adam", "Paul", "Nathan", "Théo", "Tom", "Clément", "Quentin", "Florian", "Kévin", "Rémi",
    "Damien", "Grégory", "Jérémy", "Mickaël", "Anthony", "Adrien", "Baptiste", "Bastien",
    "Benjamin", "Dominique", "Emmanuel", "Fabien", "Gérard", "Henri", "Jacques", "Joël",
    "Karim", "Mehdi", "Mohamed", "Noël", "René", "Serge", "Sylvain", "Tristan", "Victor",
    "Jean-Pierre", "Jean-Marc", "Jean-Luc", "Jean-François", "Jean-Michel", "Pierre-Yves",
    "Jean-Baptiste", "Marc-Antoine", "Aurélien", "Gaël", "Maël", "Erwan", "Yannick", "Ronan",
    "Hadrien", "Timothée", "Côme", "Anatole", "Gaspard", "Élie", "Joachim", "Octave",
)  # fmt: skip
FIRST_NAMES = FEMALE_FIRST_NAMES + MALE_FIRST_NAMES

# --- Places --------------------------------------------------------------------------------------

# code: (name, region key)
DEPARTMENTS: dict[str, tuple[str, str]] = {
    "01": ("Ain", "ara"), "02": ("Aisne", "hdf"), "03": ("Allier", "ara"),
    "04": ("Alpes-de-Haute-Provence", "paca"), "05": ("Hautes-Alpes", "paca"),
    "06": ("Alpes-Maritimes", "paca"), "07": ("Ardèche", "ara"), "08": ("Ardennes", "ge"),
    "09": ("Ariège", "occ"), "10": ("Aube", "ge"), "11": ("Aude", "occ"),
    "12": ("Aveyron", "occ"), "13": ("Bouches-du-Rhône", "paca"), "14": ("Calvados", "nor"),
    "15": ("Cantal", "ara"), "16": ("Charente", "na"), "17": ("Charente-Maritime", "na"),
    "18": ("Cher", "cvl"), "19": ("Corrèze", "na"), "2A": ("Corse-du-Sud", "cor"),
    "2B": ("Haute-Corse", "cor"), "21": ("Côte-d'Or", "bfc"), "22": ("Côtes-d'Armor", "bre"),
    "23": ("Creuse", "na"), "24": ("Dordogne", "na"), "25": ("Doubs", "bfc"),
    "26": ("Drôme", "ara"), "27": ("Eure", "nor"), "28": ("Eure-et-Loir", "cvl"),
    "29": ("Finistère", "bre"), "30": ("Gard", "occ"), "31": ("Haute-Garonne", "occ"),
    "32": ("Gers", "occ"), "33": ("Gironde", "na"), "34": ("Hérault", "occ"),
    "35": ("Ille-et-Vilaine", "bre"), "36": ("Indre", "cvl"), "37": ("Indre-et-Loire", "cvl"),
    "38": ("Isère", "ara"), "39": ("Jura", "bfc"), "40": ("Landes", "na"),
    "41": ("Loir-et-Cher", "cvl"), "42": ("Loire", "ara"), "43": ("Haute-Loire", "ara"),
    "44": ("Loire-Atlantique", "pdl"), "45": ("Loiret", "cvl"), "46": ("Lot", "occ"),
    "47": ("Lot-et-Garonne", "na"), "48": ("Lozère", "occ"), "49": ("Maine-et-Loire", "pdl"),
    "50": ("Manche", "nor"), "51": ("Marne", "ge"), "52": ("Haute-Marne", "ge"),
    "53": ("Mayenne", "pdl"), "54": ("Meurthe-et-Moselle", "ge"), "55": ("Meuse", "ge"),
    "56": ("Morbihan", "bre"), "57": ("Moselle", "ge"), "58": ("Nièvre", "bfc"),
    "59": ("Nord", "hdf"), "60": ("Oise", "hdf"), "61": ("Orne", "nor"),
    "62": ("Pas-de-Calais", "hdf"), "63": ("Puy-de-Dôme", "ara"),
    "64": ("Pyrénées-Atlantiques", "na"), "65": ("Hautes-Pyrénées", "occ"),
    "66": ("Pyrénées-Orientales", "occ"), "67": ("Bas-Rhin", "ge"), "68": ("Haut-Rhin", "ge"),
    "69": ("Rhône", "ara"), "70": ("Haute-Saône", "bfc"), "71": ("Saône-et-Loire", "bfc"),
    "72": ("Sarthe", "pdl"), "73": ("Savoie", "ara"), "74": ("Haute-Savoie", "ara"),
    "75": ("Paris", "idf"), "76": ("Seine-Maritime", "nor"), "77": ("Seine-et-Marne", "idf"),
    "78": ("Yvelines", "idf"), "79": ("Deux-Sèvres", "na"), "80": ("Somme", "hdf"),
    "81": ("Tarn", "occ"), "82": ("Tarn-et-Garonne", "occ"), "83": ("Var", "paca"),
    "84": ("Vaucluse", "paca"), "85": ("Vendée", "pdl"), "86": ("Vienne", "na"),
    "87": ("Haute-Vienne", "na"), "88": ("Vosges", "ge"), "89": ("Yonne", "bfc"),
    "90": ("Territoire de Belfort", "bfc"), "91": ("Essonne", "idf"),
    "92": ("Hauts-de-Seine", "idf"), "93": ("Seine-Saint-Denis", "idf"),
    "94": ("Val-de-Marne", "idf"), "95": ("Val-d'Oise", "idf"), "971": ("Guadeloupe", "gp"),
    "972": ("Martinique", "mq"), "973": ("Guyane", "gf"), "974": ("La Réunion", "re"),
    "975": ("Saint-Pierre-et-Miquelon", "pm"), "976": ("Mayotte", "yt"),
}  # fmt: skip

# region key: (MSSanté regional-operator-looking domain, phone prefix)
REGIONS: dict[str, tuple[str, str]] = {
    "ara": ("auvergne-rhone-alpes.mssante.fr", "04"),
    "bfc": ("bourgogne-franche-comte.mssante.fr", "03"),
    "bre": ("bretagne.mssante.fr", "02"),
    "cvl": ("centre-val-de-loire.mssante.fr", "02"),
    "cor": ("corse.mssante.fr", "04"),
    "ge": ("grand-est.mssante.fr", "03"),
    "hdf": ("hauts-de-france.mssante.fr", "03"),
    "idf": ("ile-de-france.mssante.fr", "01"),
    "nor": ("normandie.mssante.fr", "02"),
    "na": ("nouvelle-aquitaine.mssante.fr", "05"),
    "occ": ("occitanie.mssante.fr", "05"),
    "pdl": ("pays-de-la-loire.mssante.fr", "02"),
    "paca": ("paca.mssante.fr", "04"),
    "gp": ("antilles-guyane.mssante.fr", "0590"),
    "mq": ("antilles-guyane.mssante.fr", "0596"),
    "gf": ("antilles-guyane.mssante.fr", "0594"),
    "re": ("ocean-indien.mssante.fr", "0262"),
    "yt": ("ocean-indien.mssante.fr", "0269"),
    "pm": ("pro.mssante.fr", "0508"),
}
MEDITERRANEAN_OCCITANIE = {"11", "30", "34", "48", "66"}  # 04 numbers, not 05

# (town, department, postcodes, weight ~ population in thousands, hospital "CHU"/"CH"/"")
TOWNS: tuple[tuple[str, str, str, int, str], ...] = (
    ("Bourg-en-Bresse", "01", "01000", 42, "CH"), ("Oyonnax", "01", "01100", 22, "CH"),
    ("Laon", "02", "02000", 25, "CH"), ("Saint-Quentin", "02", "02100", 53, "CH"),
    ("Moulins", "03", "03000", 20, "CH"), ("Vichy", "03", "03200", 25, "CH"),
    ("Montluçon", "03", "03100", 34, "CH"), ("Digne-les-Bains", "04", "04000", 16, "CH"),
    ("Manosque", "04", "04100", 22, "CH"), ("Gap", "05", "05000", 41, "CH"),
    ("Briançon", "05", "05100", 11, "CH"), ("Nice", "06", "06000 06100 06200 06300", 342, "CHU"),
    ("Cannes", "06", "06400", 74, "CH"), ("Antibes", "06", "06600", 73, "CH"),
    ("Grasse", "06", "06130", 50, "CH"), ("Privas", "07", "07000", 8, "CH"),
    ("Annonay", "07", "07100", 16, "CH"), ("Aubenas", "07", "07200", 12, "CH"),
    ("Charleville-Mézières", "08", "08000", 46, "CH"), ("Sedan", "08", "08200", 16, "CH"),
    ("Foix", "09", "09000", 10, "CH"), ("Pamiers", "09", "09100", 16, "CH"),
    ("Troyes", "10", "10000", 61, "CH"), ("Carcassonne", "11", "11000", 46, "CH"),
    ("Narbonne", "11", "11100", 56, "CH"), ("Rodez", "12", "12000", 25, "CH"),
    ("Millau", "12", "12100", 22, "CH"),
    (
        "Marseille",
        "13",
        "13001 13002 13003 13004 13005 13006 13007 13008 13009 13010 13011 13012 13013 "
        "13014 13015 13016",
        870,
        "CHU",
    ),
    ("Aix-en-Provence", "13", "13090 13100", 145, "CH"), ("Arles", "13", "13200", 51, "CH"),
    ("Martigues", "13", "13500", 49, "CH"), ("Aubagne", "13", "13400", 47, "CH"),
    ("Caen", "14", "14000", 106, "CHU"), ("Lisieux", "14", "14100", 20, "CH"),
    ("Bayeux", "14", "14400", 13, "CH"), ("Aurillac", "15", "15000", 26, "CH"),
    ("Angoulême", "16", "16000", 42, "CH"), ("Cognac", "16", "16100", 18, "CH"),
    ("La Rochelle", "17", "17000", 77, "CH"), ("Saintes", "17", "17100", 25, "CH"),
    ("Rochefort", "17", "17300", 24, "CH"), ("Royan", "17", "17200", 19, "CH"),
    ("Bourges", "18", "18000", 64, "CH"), ("Vierzon", "18", "18100", 26, "CH"),
    ("Tulle", "19", "19000", 15, "CH"), ("Brive-la-Gaillarde", "19", "19100", 46, "CH"),
    ("Ajaccio", "2A", "20000 20090", 72, "CH"), ("Porto-Vecchio", "2A", "20137", 12, "CH"),
    ("Bastia", "2B", "20200 20600", 48, "CH"), ("Corte", "2B", "20250", 8, "CH"),
    ("Dijon", "21", "21000", 159, "CHU"), ("Beaune", "21", "21200", 21, "CH"),
    ("Saint-Brieuc", "22", "22000", 44, "CH"), ("Lannion", "22", "22300", 20, "CH"),
    ("Dinan", "22", "22100", 15, "CH"), ("Guéret", "23", "23000", 13, "CH"),
    ("Périgueux", "24", "24000", 30, "CH"), ("Bergerac", "24", "24100", 27, "CH"),
    ("Sarlat-la-Canéda", "24", "24200", 9, "CH"), ("Besançon", "25", "25000", 119, "CHU"),
    ("Montbéliard", "25", "25200", 25, "CH"), ("Pontarlier", "25", "25300", 18, "CH"),
    ("Valence", "26", "26000", 64, "CH"), ("Montélimar", "26", "26200", 40, "CH"),
    ("Romans-sur-Isère", "26", "26100", 33, "CH"), ("Évreux", "27", "27000", 47, "CH"),
    ("Vernon", "27", "27200", 24, "CH"), ("Chartres", "28", "28000", 39, "CH"),
    ("Dreux", "28", "28100", 30, "CH"), ("Quimper", "29", "29000", 63, "CH"),
    ("Brest", "29", "29200", 140, "CHU"), ("Morlaix", "29", "29600", 15, "CH"),
    ("Nîmes", "30", "30000 30900", 150, "CHU"), ("Alès", "30", "30100", 42, "CH"),
    ("Toulouse", "31", "31000 31100 31200 31300 31400 31500", 500, "CHU"),
    ("Saint-Gaudens", "31", "31800", 11, "CH"), ("Muret", "31", "31600", 25, "CH"),
    ("Auch", "32", "32000", 22, "CH"),
    ("Bordeaux", "33", "33000 33100 33200 33300 33800", 260, "CHU"),
    ("Mérignac", "33", "33700", 72, ""), ("Pessac", "33", "33600", 65, ""),
    ("Libourne", "33", "33500", 25, "CH"), ("Arcachon", "33", "33120", 11, "CH"),
    ("Montpellier", "34", "34000 34070 34080 34090", 300, "CHU"),
    ("Béziers", "34", "34500", 79, "CH"), ("Sète", "34", "34200", 44, "CH"),
    ("Rennes", "35", "35000 35200 35700", 222, "CHU"), ("Saint-Malo", "35", "35400", 47, "CH"),
    ("Fougères", "35", "35300", 20, "CH"), ("Vitré", "35", "35500", 19, "CH"),
    ("Châteauroux", "36", "36000", 43, "CH"), ("Tours", "37", "37000 37100 37200", 137, "CHU"),
    ("Amboise", "37", "37400", 13, "CH"), ("Chinon", "37", "37500", 8, "CH"),
    ("Grenoble", "38", "38000 38100", 158, "CHU"), ("Vienne", "38", "38200", 30, "CH"),
    ("Voiron", "38", "38500", 20, "CH"), ("Bourgoin-Jallieu", "38", "38300", 29, "CH"),
    ("Lons-le-Saunier", "39", "39000", 17, "CH"), ("Dole", "39", "39100", 24, "CH"),
    ("Mont-de-Marsan", "40", "40000", 30, "CH"), ("Dax", "40", "40100", 21, "CH"),
    ("Blois", "41", "41000", 46, "CH"), ("Vendôme", "41", "41100", 16, "CH"),
    ("Saint-Étienne", "42", "42000 42100", 173, "CHU"), ("Roanne", "42", "42300", 34, "CH"),
    ("Montbrison", "42", "42600", 16, "CH"), ("Le Puy-en-Velay", "43", "43000", 19, "CH"),
    ("Nantes", "44", "44000 44100 44200 44300", 320, "CHU"),
    ("Saint-Nazaire", "44", "44600", 71, "CH"), ("Rezé", "44", "44400", 43, ""),
    ("Orléans", "45", "45000", 117, "CHU"), ("Montargis", "45", "45200", 14, "CH"),
    ("Cahors", "46", "46000", 19, "CH"), ("Figeac", "46", "46100", 10, "CH"),
    ("Agen", "47", "47000", 32, "CH"), ("Villeneuve-sur-Lot", "47", "47300", 22, "CH"),
    ("Marmande", "47", "47200", 17, "CH"), ("Mende", "48", "48000", 12, "CH"),
    ("Angers", "49", "49000 49100", 157, "CHU"), ("Cholet", "49", "49300", 54, "CH"),
    ("Saumur", "49", "49400", 26, "CH"), ("Saint-Lô", "50", "50000", 19, "CH"),
    ("Cherbourg-en-Cotentin", "50", "50100", 78, "CH"), ("Avranches", "50", "50300", 10, "CH"),
    ("Châlons-en-Champagne", "51", "51000", 44, "CH"), ("Reims", "51", "51100", 180, "CHU"),
    ("Épernay", "51", "51200", 22, "CH"), ("Chaumont", "52", "52000", 22, "CH"),
    ("Saint-Dizier", "52", "52100", 23, "CH"), ("Laval", "53", "53000", 49, "CH"),
    ("Mayenne", "53", "53100", 13, "CH"), ("Nancy", "54", "54000 54100", 104, "CHU"),
    ("Lunéville", "54", "54300", 18, ""), ("Vandœuvre-lès-Nancy", "54", "54500", 29, ""),
    ("Bar-le-Duc", "55", "55000", 15, "CH"), ("Verdun", "55", "55100", 17, "CH"),
    ("Vannes", "56", "56000", 54, "CH"), ("Lorient", "56", "56100", 57, "CH"),
    ("Pontivy", "56", "56300", 15, "CH"), ("Metz", "57", "57000 57050", 118, "CH"),
    ("Thionville", "57", "57100", 41, "CH"), ("Sarreguemines", "57", "57200", 21, "CH"),
    ("Forbach", "57", "57600", 21, "CH"), ("Nevers", "58", "58000", 33, "CH"),
    ("Lille", "59", "59000 59800", 236, "CHU"), ("Roubaix", "59", "59100", 98, "CH"),
    ("Tourcoing", "59", "59200", 98, "CH"), ("Dunkerque", "59", "59140", 87, "CH"),
    ("Valenciennes", "59", "59300", 43, "CH"), ("Douai", "59", "59500", 39, "CH"),
    ("Cambrai", "59", "59400", 32, "CH"), ("Maubeuge", "59", "59600", 29, "CH"),
    ("Villeneuve-d'Ascq", "59", "59650", 62, ""), ("Beauvais", "60", "60000", 56, "CH"),
    ("Compiègne", "60", "60200", 40, "CH"), ("Creil", "60", "60100", 36, "CH"),
    ("Alençon", "61", "61000", 25, "CH"), ("Flers", "61", "61100", 15, "CH"),
    ("Arras", "62", "62000", 41, "CH"), ("Calais", "62", "62100", 67, "CH"),
    ("Boulogne-sur-Mer", "62", "62200", 40, "CH"), ("Lens", "62", "62300", 32, "CH"),
    ("Béthune", "62", "62400", 25, "CH"), ("Clermont-Ferrand", "63", "63000 63100", 147, "CHU"),
    ("Riom", "63", "63200", 19, "CH"), ("Thiers", "63", "63300", 11, "CH"),
    ("Pau", "64", "64000", 75, "CH"), ("Bayonne", "64", "64100", 52, "CH"),
    ("Biarritz", "64", "64200", 25, ""), ("Tarbes", "65", "65000", 41, "CH"),
    ("Lourdes", "65", "65100", 13, "CH"), ("Perpignan", "66", "66000 66100", 120, "CH"),
    ("Strasbourg", "67", "67000 67100 67200", 290, "CHU"), ("Haguenau", "67", "67500", 35, "CH"),
    ("Sélestat", "67", "67600", 19, "CH"), ("Saverne", "67", "67700", 11, "CH"),
    ("Colmar", "68", "68000", 68, "CH"), ("Mulhouse", "68", "68100 68200", 107, "CH"),
    ("Lyon", "69", "69001 69002 69003 69004 69005 69006 69007 69008 69009", 520, "CHU"),
    ("Villeurbanne", "69", "69100", 155, ""), ("Vénissieux", "69", "69200", 67, ""),
    ("Villefranche-sur-Saône", "69", "69400", 37, "CH"), ("Vesoul", "70", "70000", 15, "CH"),
    ("Mâcon", "71", "71000", 34, "CH"), ("Chalon-sur-Saône", "71", "71100", 45, "CH"),
    ("Le Creusot", "71", "71200", 21, "CH"), ("Le Mans", "72", "72000 72100", 145, "CH"),
    ("Chambéry", "73", "73000", 60, "CH"), ("Aix-les-Bains", "73", "73100", 31, "CH"),
    ("Albertville", "73", "73200", 19, "CH"), ("Annecy", "74", "74000", 130, "CH"),
    ("Annemasse", "74", "74100", 37, "CH"), ("Thonon-les-Bains", "74", "74200", 36, "CH"),
    (
        "Paris",
        "75",
        "75001 75002 75003 75004 75005 75006 75007 75008 75009 75010 75011 75012 75013 "
        "75014 75015 75016 75017 75018 75019 75020",
        2100,
        "CHU",
    ),
    ("Rouen", "76", "76000 76100", 114, "CHU"), ("Le Havre", "76", "76600", 166, "CH"),
    ("Dieppe", "76", "76200", 28, "CH"), ("Melun", "77", "77000", 41, "CH"),
    ("Meaux", "77", "77100", 56, "CH"), ("Chelles", "77", "77500", 55, ""),
    ("Fontainebleau", "77", "77300", 15, "CH"), ("Versailles", "78", "78000", 84, "CH"),
    ("Saint-Germain-en-Laye", "78", "78100", 44, "CH"), ("Mantes-la-Jolie", "78", "78200", 44, ""),
    ("Poissy", "78", "78300", 38, "CH"), ("Niort", "79", "79000", 59, "CH"),
    ("Bressuire", "79", "79300", 20, "CH"), ("Amiens", "80", "80000 80080 80090", 134, "CHU"),
    ("Abbeville", "80", "80100", 22, "CH"), ("Albi", "81", "81000", 49, "CH"),
    ("Castres", "81", "81100", 42, "CH"), ("Montauban", "82", "82000", 61, "CH"),
    ("Toulon", "83", "83000 83100 83200", 180, "CH"), ("Fréjus", "83", "83600", 55, "CH"),
    ("Hyères", "83", "83400", 56, "CH"), ("Draguignan", "83", "83300", 40, "CH"),
    ("Avignon", "84", "84000", 91, "CH"), ("Carpentras", "84", "84200", 29, "CH"),
    ("Orange", "84", "84100", 29, "CH"), ("Cavaillon", "84", "84300", 26, "CH"),
    ("La Roche-sur-Yon", "85", "85000", 55, "CH"), ("Les Sables-d'Olonne", "85", "85100", 47, "CH"),
    ("Poitiers", "86", "86000", 89, "CHU"), ("Châtellerault", "86", "86100", 31, "CH"),
    ("Limoges", "87", "87000 87100 87280", 131, "CHU"), ("Épinal", "88", "88000", 32, "CH"),
    ("Saint-Dié-des-Vosges", "88", "88100", 19, "CH"), ("Auxerre", "89", "89000", 35, "CH"),
    ("Sens", "89", "89100", 27, "CH"), ("Belfort", "90", "90000", 47, "CH"),
    ("Évry-Courcouronnes", "91", "91000", 67, ""), ("Corbeil-Essonnes", "91", "91100", 51, "CH"),
    ("Massy", "91", "91300", 52, ""), ("Palaiseau", "91", "91120", 36, ""),
    ("Nanterre", "92", "92000", 96, "CH"), ("Boulogne-Billancourt", "92", "92100", 121, ""),
    ("Clichy", "92", "92110", 63, ""), ("Neuilly-sur-Seine", "92", "92200", 59, ""),
    ("Clamart", "92", "92140", 54, ""), ("Courbevoie", "92", "92400", 82, ""),
    ("Bobigny", "93", "93000", 55, ""), ("Saint-Denis", "93", "93200", 113, "CH"),
    ("Montreuil", "93", "93100", 111, "CH"), ("Aubervilliers", "93", "93300", 88, ""),
    ("Aulnay-sous-Bois", "93", "93600", 86, "CH"), ("Créteil", "94", "94000", 92, "CH"),
    ("Vitry-sur-Seine", "94", "94400", 95, ""), ("Villejuif", "94", "94800", 56, ""),
    ("Ivry-sur-Seine", "94", "94200", 63, ""), ("Le Kremlin-Bicêtre", "94", "94270", 26, ""),
    ("Cergy", "95", "95000", 66, ""), ("Argenteuil", "95", "95100", 111, "CH"),
    ("Pontoise", "95", "95300", 32, "CH"), ("Pointe-à-Pitre", "971", "97110", 15, "CHU"),
    ("Basse-Terre", "971", "97100", 10, "CH"), ("Les Abymes", "971", "97139", 53, ""),
    ("Fort-de-France", "972", "97200", 77, "CHU"), ("Le Lamentin", "972", "97232", 40, ""),
    ("Cayenne", "973", "97300", 64, "CH"), ("Saint-Laurent-du-Maroni", "973", "97320", 50, "CH"),
    ("Saint-Denis", "974", "97400", 153, "CHU"), ("Saint-Pierre", "974", "97410", 85, "CH"),
    ("Saint-Paul", "974", "97460", 105, ""), ("Le Tampon", "974", "97430", 80, ""),
    ("Saint-Pierre", "975", "97500", 6, "CH"), ("Mamoudzou", "976", "97600", 71, "CH"),
)  # fmt: skip
# Hospitals with their own MSSanté domain (the others' staff use profession or regional ones).
HOSPITAL_DOMAIN_SHARE = 0.05


# --- Helpers -------------------------------------------------------------------------------------


class _Weighted:
    """Draw items by weight with one random() and a bisection."""

    __slots__ = ("_cumulative", "_items", "_total")

    def __init__(self, items: Sequence, weights: Sequence[float]) -> None:
        self._items = tuple(items)
        self._cumulative = tuple(accumulate(weights))
        self._total = self._cumulative[-1]

    def pick(self, rnd: Callable[[], float]):
        return self._items[bisect(self._cumulative, rnd() * self._total)]


def ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "OE"))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _upper(text: str) -> str:
    """Structure and street names: upper case without accents, as in the real file."""
    return ascii_fold(text).upper()


def _slug(text: str) -> str:
    """Mail local part or domain label: ascii, lower case, words joined by "-"."""
    folded = ascii_fold(text).lower().replace("'", "")
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")


def _of(town: str) -> str:
    """French "de" before a town name: de Nancy, d'Alès, du Mans, des Sables…, de La Rochelle."""
    if town.startswith("Le "):
        return "du " + town[3:]
    if town.startswith("Les "):
        return "des " + town[4:]
    if ascii_fold(town[0]).lower() in "aeiouyh":
        return "d'" + town
    return "de " + town


def luhn_key(digits: str) -> str:
    """The digit that makes ``digits + key`` pass the Luhn check (RPPS, SIREN, SIRET)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 0:  # doubled once the key is appended
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str(-total % 10)


def _phone(rnd: Callable[[], float], prefix: str) -> str:
    rest = 10 - len(prefix)
    return prefix + f"{int(rnd() * 10**rest):0{rest}d}"


class _Town(NamedTuple):
    name: str
    department: str
    department_label: str
    region: str
    postcodes: tuple[str, ...]
    commune_code: str
    phone_prefix: str
    hospital: str


def _towns() -> tuple[_Town, ...]:
    towns = []
    for index, (name, dept, postcodes, _weight, hospital) in enumerate(TOWNS):
        label, region = DEPARTMENTS[dept]
        prefix = REGIONS[region][1]
        if region == "occ" and dept in MEDITERRANEAN_OCCITANIE:
            prefix = "04"
        width = 5 - len(dept)
        commune = dept + f"{(index * 37) % (10**width - 1) + 1:0{width}d}"  # shaped like INSEE
        towns.append(
            _Town(name, dept, label, region, tuple(postcodes.split()), commune, prefix, hospital)
        )
    return tuple(towns)


class _Site(NamedTuple):
    """A structure: the 28 columns from "Numéro SIRET site" to "Ancien identifiant de la
    structure", then what the mailbox file and the generator need."""

    siret: str
    siren: str
    finess_site: str
    finess_legal: str
    structure_id: str
    name: str
    sign: str
    recipient: str
    place: str
    number: str
    repeat: str
    type_code: str
    type_label: str
    street: str
    distribution: str
    cedex: str
    postcode: str
    commune: str
    town: str
    country_code: str
    country_label: str
    phone: str
    phone2: str
    fax: str
    email: str
    department: str
    department_label: str
    old_id: str
    # Beyond the activity columns:
    idnat_struct_type: str  # "1" FINESS, "3" SIRET
    idnat_struct: str
    kind: str  # hospital, centre, cabinet, group, pharmacy, lab, ehpad
    domain: str  # the hospital's own MSSanté domain, or ""
    region: str
    town_index: int


SITE_COLUMNS = 28
SECTOR_BY_KIND = {
    "hospital": "SA01",
    "centre": "SA05",
    "cabinet": "SA07",
    "group": "SA08",
    "pharmacy": "",
    "lab": "",
    "ehpad": "",
    "shop": "",
}


# --- The generator -------------------------------------------------------------------------------


class _Generator:
    def __init__(self, *, seed: int, mailbox_ratio: float) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
        self.rnd = self.rng.random
        self.mailbox_ratio = mailbox_ratio
        self.towns = _towns()
        self.town_picker = _Weighted(range(len(self.towns)), [t[3] for t in TOWNS])
        self.professions = _Weighted(PROFESSIONS, [p.weight for p in PROFESSIONS])
        self.doctor_skills = _Weighted(DOCTOR_SKILLS, [s[2] for s in DOCTOR_SKILLS])
        self.dentist_skills = _Weighted(DENTIST_SKILLS, [s[2] for s in DENTIST_SKILLS])
        self.categories = _Weighted(CATEGORIES, [c[2] for c in CATEGORIES])
        self.street_types = _Weighted(STREET_TYPES, [s[2] for s in STREET_TYPES])
        self.first_slugs = tuple(_slug(name) for name in FIRST_NAMES)
        self.last_slugs = tuple(_slug(name) for name in LAST_NAMES)
        self.last_upper = tuple(name.upper() for name in LAST_NAMES)
        self.rpps_offset = self.rng.randrange(10**8)
        self.adeli_counters: dict[tuple[str, str], int] = {}
        self.structure_counter = 0
        # Mailbox domains: professions, pro, regional, then hospitals' own.
        domains = [p.domain for p in PROFESSIONS if p.domain] + ["pro.mssante.fr"]
        domains += sorted({domain for domain, _prefix in REGIONS.values()} - set(domains))
        self.hospitals = [self._hospital(i, t) for i, t in enumerate(self.towns)]
        domains += sorted({site.domain for site in self.hospitals if site and site.domain})
        self.domains = tuple(domains)
        self.domain_index = {domain: i for i, domain in enumerate(self.domains)}
        # How many times each (first, last, domain) local part was given: bounded by the name
        # lists, not by the number of people (a few MB).
        self.per_used = bytearray(len(FIRST_NAMES) * len(LAST_NAMES) * len(self.domains))
        self.per_overflow: dict[int, int] = {}
        self.org_used: dict[tuple[str, str], int] = {}

    # -- identifiers

    def _next_structure(self) -> int:
        self.structure_counter += 1
        return self.structure_counter

    def _siret(self, siren_head: str = "") -> tuple[str, str]:
        rnd = self.rnd
        head = siren_head or str(1 + int(rnd() * 9))
        body = head + f"{int(rnd() * 10 ** (8 - len(head))):0{8 - len(head)}d}"
        siren = body + luhn_key(body)
        nic = f"{1 + int(rnd() * 99):04d}"
        return siren + nic + luhn_key(siren + nic), siren

    def _finess(self, department: str) -> str:
        """9 characters starting with the department (2A/2B for Corsica, 97x overseas)."""
        width = 9 - len(department)
        return department + f"{int(self.rnd() * 10**width):0{width}d}"

    def _rpps(self, index: int) -> str:
        base = f"10{(index * 7919 + self.rpps_offset) % 10**8:08d}"
        return base + luhn_key(base)

    def _adeli(self, town: _Town, profession: str) -> str | None:
        dept = town.department[:2] if town.department[:2].isdigit() else "20"
        key = (dept, profession)
        count = self.adeli_counters.get(key, 0)
        if count >= 10**5:
            return None
        self.adeli_counters[key] = count + 1
        return f"{dept}{profession}{count:05d}"

    # -- places

    def _address(self, town: _Town) -> tuple:
        rnd = self.rnd
        type_code, type_label, _ = self.street_types.pick(rnd)
        number = str(1 + int(rnd() * 120)) if rnd() < 0.93 else ""
        repeat = ("B" if rnd() < 0.7 else "T") if number and rnd() < 0.03 else ""
        street = STREETS[int(rnd() * len(STREETS))]
        place = PLACES[int(rnd() * len(PLACES))] if rnd() < 0.08 else ""
        postcode = town.postcodes[int(rnd() * len(town.postcodes))]
        return place, number, repeat, type_code, type_label, street, postcode

    def _hospital(self, index: int, town: _Town) -> "_Site | None":
        if not town.hospital:
            return None
        rnd = self.rnd
        kind = (
            "CENTRE HOSPITALIER UNIVERSITAIRE" if town.hospital == "CHU" else "CENTRE HOSPITALIER"
        )
        name = f"{kind} {_upper(_of(town.name))}"
        domain = ""
        if town.hospital == "CHU" or rnd() < HOSPITAL_DOMAIN_SHARE:
            domain = f"{town.hospital.lower()}-{_slug(town.name)}.mssante.fr"
            if len(town.department) == 3:  # Saint-Denis, Saint-Pierre: also towns elsewhere
                domain = domain.replace(".mssante.fr", f"-{town.department}.mssante.fr")
        siret, siren = self._siret("26")
        place, number, repeat, type_code, type_label, street, postcode = self._address(town)
        finess = self._finess(town.department)
        return _Site(
            siret, siren, finess, self._finess(town.department), f"F{finess}0001",
            name, "", "", place, number, repeat, type_code, type_label, street,
            f"CS {10000 + int(rnd() * 90000)}" if rnd() < 0.5 else "",
            f"{postcode} {_upper(town.name)} CEDEX" if rnd() < 0.6 else "",
            postcode, town.commune_code, town.name, "", "",
            _phone(rnd, town.phone_prefix), "", _phone(rnd, town.phone_prefix), "",
            town.department, town.department_label, "", "1", "1" + finess, "hospital", domain,
            town.region, index,
        )  # fmt: skip

    def _site(self, town_index: int, kind: str, name: str, sign: str = "") -> _Site:
        """A practice, pharmacy, centre…: a new structure for each activity."""
        rnd = self.rnd
        town = self.towns[town_index]
        place, number, repeat, type_code, type_label, street, postcode = self._address(town)
        siret, siren = self._siret()
        n = self._next_structure()
        finess = self._finess(town.department) if kind in ("centre", "lab", "ehpad") else ""
        email = ""
        if rnd() < 0.08:
            email = f"contact@{_slug(name)[:30].strip('-')}.fr"
        if finess:
            idnat_type, idnat = "1", "1" + finess
        else:
            idnat_type, idnat = "3", "3" + siret
        return _Site(
            siret, siren, finess, finess and self._finess(town.department), f"R{10**13 + n}",
            name, sign, "", place, number, repeat, type_code, type_label, street,
            "", "", postcode, town.commune_code, town.name, "", "",
            _phone(rnd, town.phone_prefix) if rnd() < 0.75 else "",
            _phone(rnd, "06") if rnd() < 0.05 else "",
            _phone(rnd, town.phone_prefix) if rnd() < 0.12 else "",
            email, town.department, town.department_label,
            f"0{town.department[:2]}{int(rnd() * 10**7):07d}" if rnd() < 0.1 else "",
            idnat_type, idnat, kind, "", town.region, town_index,
        )  # fmt: skip

    # -- activities

    def activity(self, p: Profession, last: str, first: str, town_index: int) -> tuple:
        """(mode code, site or None, sector code, pharma section, role, genre) of one activity."""
        rnd = self.rnd
        r = rnd()
        town = self.towns[town_index]
        if r < 0.004:
            mode = "B"
        elif r < p.liberal:
            mode = "L"
        else:
            mode = "S"
        section, genre = "", "GENR01"
        hospital = self.hospitals[town_index]
        code = p.code
        if mode == "S" and code in ("26", "28"):
            kind, name, sign = self._practice(p, last, first, town)
            site, role = self._site(town_index, kind, name, sign), "FON-33"
        elif mode == "S":
            r = rnd()
            if code == "21" and r < 0.45:
                site = self._site(town_index, "pharmacy", self._pharmacy_name(town, last))
                role, section = "FON-05", "D"
            elif code == "21" and r < 0.6:
                site = self._site(town_index, "lab", f"LABORATOIRE {_upper(_of(town.name))}")
                role, section = "FON-33", "G"
            elif hospital is not None and r < 0.78:
                site, role, section = hospital, "FON-33", "H"
                if code == "10" and rnd() < 0.08:
                    role = "FON-48"
            elif code == "98":
                name = f"CENTRE D'IMAGERIE MEDICALE {_upper(_of(town.name))}"
                site, role = self._site(town_index, "group", name), "FON-33"
            elif r < 0.9:
                name = f"CENTRE DE SANTE {_upper(_of(town.name))}"
                if code == "40":
                    name = f"CENTRE DE SANTE DENTAIRE {_upper(_of(town.name))}"
                site, role, section = self._site(town_index, "centre", name), "FON-33", "H"
            else:
                name = f"EHPAD {PLACES_EHPAD[int(rnd() * len(PLACES_EHPAD))]}"
                site, role, section = self._site(town_index, "ehpad", name), "FON-33", "H"
        else:
            role = "FON-01"
            if code == "21":
                site = self._site(town_index, "pharmacy", self._pharmacy_name(town, last))
                role, section = "FON-03", "A"
            else:
                kind, name, sign = self._practice(p, last, first, town)
                site = self._site(town_index, kind, name, sign)
                if kind == "group":
                    role = "FON-02" if rnd() < 0.5 else "FON-17"
            if rnd() < 0.04:
                role, genre = "FON-22", "GENR02"
        if code != "21":
            section = ""
        elif town.department.startswith("97"):
            section = "E"
        return mode, site, SECTOR_BY_KIND[site.kind], section, role, genre

    def _pharmacy_name(self, town: _Town, last: str) -> str:
        r = self.rnd()
        if r < 0.55:
            return "PHARMACIE " + PHARMACY_NAMES[int(self.rnd() * len(PHARMACY_NAMES))]
        if r < 0.8:
            return "PHARMACIE " + _upper(last)
        return "GRANDE PHARMACIE " + _upper(_of(town.name))

    def _practice(self, p: Profession, last: str, first: str, town: _Town) -> tuple[str, str, str]:
        rnd = self.rnd
        group = rnd() < 0.45
        name_up = _upper(f"{first} {last}")
        of_town = _upper(_of(town.name))
        code = p.code
        if code == "10":
            if group:
                if rnd() < 0.4:
                    return "group", f"MAISON DE SANTE PLURIPROFESSIONNELLE {of_town}", ""
                return "group", f"CABINET MEDICAL {STREETS[int(rnd() * len(STREETS))]}", ""
            return "cabinet", f"CABINET DU DR {name_up}", ""
        if code == "40":
            if group:
                name = DENTAL_NAMES[int(rnd() * len(DENTAL_NAMES))]
                return "group", f"CABINET DENTAIRE {name}", ""
            return "cabinet", f"CABINET DENTAIRE DU DR {name_up}", ""
        label = PRACTICE_LABELS.get(code, "CABINET " + _upper(p.label))
        if group and code not in ("28", "26"):
            return "group", f"{label} {of_town}", ""
        if code in ("28", "26"):
            return "shop", f"{label} {_upper(last)}", f"{label} {_upper(town.name)}"
        return "cabinet", f"{label} {name_up}", ""

    # -- mailboxes

    def per_address(self, first_index: int, last_index: int, domain: str) -> str:
        domain_index = self.domain_index[domain]
        key = (first_index * len(LAST_NAMES) + last_index) * len(self.domains) + domain_index
        used = self.per_used[key]
        if used == 255:
            used = self.per_overflow.get(key, 255)
            self.per_overflow[key] = used + 1
        else:
            self.per_used[key] = used + 1
        local = f"{self.first_slugs[first_index]}.{self.last_slugs[last_index]}"
        return f"{local}{used + 1 if used else ''}@{domain}"

    def org_address(self, local: str, domain: str) -> str:
        used = self.org_used.get((local, domain), 0)
        self.org_used[(local, domain)] = used + 1
        return f"{local}{used + 1 if used else ''}@{domain}"


PLACES_EHPAD = (
    "LES GLYCINES", "LES TILLEULS", "LE BOIS JOLI", "LES JARDINS D'AUTOMNE", "LA ROSERAIE",
    "LES CHARMILLES", "RESIDENCE DU LAC", "LES MIMOSAS", "LE VAL FLEURI", "LES HORTENSIAS",
)  # fmt: skip
PHARMACY_NAMES = (
    "DE LA GARE", "DU CENTRE", "DE LA MAIRIE", "DU MARCHE", "DES ARCADES", "DU PORT",
    "DE L'EGLISE", "DU PARC", "DES HALLES", "CENTRALE", "DE LA POSTE", "DU PONT",
    "DES QUATRE CHEMINS", "DU SOLEIL", "DE LA PLACE", "DU LAC", "DES ECOLES", "PRINCIPALE",
)  # fmt: skip
DENTAL_NAMES = (
    "DU PARC", "DES ARCADES", "DU CENTRE", "DE LA GARE", "DES LILAS", "DU SOLEIL", "SAINT-MARTIN",
    "DES TILLEULS", "DE LA PLACE", "DU PORT",
)  # fmt: skip
PRACTICE_LABELS = {
    "60": "CABINET INFIRMIER",
    "70": "CABINET DE KINESITHERAPIE",
    "50": "CABINET DE SAGE-FEMME",
    "80": "CABINET DE PEDICURIE-PODOLOGIE",
    "91": "CABINET D'ORTHOPHONIE",
    "92": "CABINET D'ORTHOPTIE",
    "26": "CENTRE AUDITIF",
    "28": "OPTIQUE",
    "94": "CABINET D'ERGOTHERAPIE",
    "95": "CABINET DE DIETETIQUE",
    "96": "CABINET DE PSYCHOMOTRICITE",
    "98": "CABINET DE RADIOLOGIE",
}


# --- Writing -------------------------------------------------------------------------------------


class _Sink:
    """Buffered line writer to a file or a zip member; ``|``-joined rows with a trailing ``|``."""

    def __init__(self, stream: BinaryIO, *, trailing_bar: bool = True) -> None:
        self.stream = stream
        self.end = "|\n" if trailing_bar else "\n"
        self.buffer: list[str] = []
        self.rows = 0

    def header(self, columns: Sequence[str]) -> None:
        self.buffer.append("|".join(columns) + self.end)

    def row(self, fields: Sequence[str]) -> None:
        self.buffer.append("|".join(fields) + self.end)
        self.rows += 1
        if len(self.buffer) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.stream.write("".join(self.buffer).encode("utf-8"))
            self.buffer.clear()


def write_sample(
    *,
    people: int,
    out_dir: Path,
    seed: int = 1,
    generation: int = 56,
    stamp: str = "202611280000",
    mailbox_ratio: float = 0.3,
    zip: bool = False,
    mailbox_trailing_bar: bool = True,
) -> SampleFiles:
    """Write a synthetic activity file and mailbox file for ``people`` professionals.

    ``generation`` picks the activity header (56, 52 or 48 columns). With ``zip``, each file
    is written inside its official zip (``PS_LibreAcces_<stamp>.zip``,
    ``Extraction_Correspondance_MSSante_<stamp>.zip``) and the zips' paths are returned.
    ``mailbox_trailing_bar=False`` writes the mailbox file as some copies have it, without the
    trailing ``|``. Files appear under their final names only once complete.
    """
    if generation not in ACTIVITY_GENERATIONS:
        raise ValueError(f"generation must be one of {GENERATIONS}")
    if not STAMP_RE.match(stamp):
        raise ValueError("stamp must be YYYYMMDDhhmm (12 digits)")
    if people < 0:
        raise ValueError("people must be >= 0")
    if not 0 <= mailbox_ratio <= 1:
        raise ValueError("mailbox_ratio must be between 0 and 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    act_name = f"{ACTIVITIES_PREFIX}_{stamp}.txt"
    bal_name = f"{MSSANTE_PREFIX}_{stamp}.txt"
    if zip:
        act_path = out_dir / f"{ACTIVITIES_ZIP_PREFIX}_{stamp}.zip"
        bal_path = out_dir / f"{MSSANTE_PREFIX}_{stamp}.zip"
    else:
        act_path, bal_path = out_dir / act_name, out_dir / bal_name
    act_part = act_path.with_name(act_path.name + ".part")
    bal_part = bal_path.with_name(bal_path.name + ".part")
    try:
        with (
            _open_output(act_part, act_name, in_zip=zip, stamp=stamp) as act_stream,
            _open_output(bal_part, bal_name, in_zip=zip, stamp=stamp) as bal_stream,
        ):
            activities = _Sink(act_stream)
            mailboxes = _Sink(bal_stream, trailing_bar=mailbox_trailing_bar)
            _generate(
                people=people,
                generation=generation,
                seed=seed,
                mailbox_ratio=mailbox_ratio,
                activities=activities,
                mailboxes=mailboxes,
            )
            activities.flush()
            mailboxes.flush()
        os.replace(act_part, act_path)
        os.replace(bal_part, bal_path)
    finally:
        act_part.unlink(missing_ok=True)
        bal_part.unlink(missing_ok=True)
    return SampleFiles(act_path, bal_path, activities.rows, mailboxes.rows)


@contextmanager
def _open_output(path: Path, member: str, *, in_zip: bool, stamp: str) -> Iterator[BinaryIO]:
    """A binary stream to ``path``, or to the member ``member`` of a new zip at ``path`` (dated
    from the stamp, so that the same arguments give the same bytes)."""
    if not in_zip:
        with path.open("wb") as stream:
            yield stream
        return
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        moment = tuple(int(stamp[i : i + 2]) for i in range(4, 12, 2))
        info = zipfile.ZipInfo(member, date_time=(int(stamp[:4]), *moment, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        with archive.open(info, "w", force_zip64=True) as stream:
            yield stream


def _generate(
    *,
    people: int,
    generation: int,
    seed: int,
    mailbox_ratio: float,
    activities: _Sink,
    mailboxes: _Sink,
) -> None:
    g = _Generator(seed=seed, mailbox_ratio=mailbox_ratio)
    rnd = g.rnd
    activities.header(ACTIVITY_GENERATIONS[generation])
    mailboxes.header(MAILBOX_HEADER)
    n_female, n_first, n_last = len(FEMALE_FIRST_NAMES), len(FIRST_NAMES), len(LAST_NAMES)
    n_male = n_first - n_female
    towns = g.towns
    n_towns = len(towns)
    second_mailbox = 0.05
    org_rate = 0.15  # of the people with a mailbox, also an ORG one for their structure
    duplicate_rate = 0.004
    act_row, bal_row = activities.row, mailboxes.row

    for index in range(people):
        p = g.professions.pick(rnd)
        female = rnd() < p.female
        first_index = int(rnd() * n_female) if female else n_female + int(rnd() * n_male)
        last_index = int(rnd() * n_last)
        first, last = FIRST_NAMES[first_index], LAST_NAMES[last_index]
        last_up = g.last_upper[last_index]
        home = g.town_picker.pick(rnd)
        town = towns[home]

        id_type, id_pp = "8", ""
        if p.adeli and rnd() < p.adeli:
            id_pp = g._adeli(town, p.code) or ""
            id_type = "0" if id_pp else "8"
        if not id_pp:
            id_pp = g._rpps(index)
        idnat = id_type + id_pp
        civility = "MME" if female else "M"
        title = ""
        if p.doctor_title:
            title = "PR" if p.code == "10" and rnd() < 0.01 else "DR"
        category = g.categories.pick(rnd) if p.code in ("10", "21", "40", "50") else CATEGORIES[0]
        skill_type = skill_code = skill_label = ""
        if p.code == "10":
            skill_code, skill_label, _ = g.doctor_skills.pick(rnd)
        elif p.code == "40":
            skill_code, skill_label, _ = g.dentist_skills.pick(rnd)
        if skill_code:
            skill_type = SKILL_TYPE[0]
        person = [
            id_type, id_pp, idnat, title, CIVILITIES[title] if title else "", civility,
            CIVILITIES[civility], last_up, first, p.code, p.label, category[0], category[1],
            skill_type, SKILL_TYPE[1] if skill_type else "", skill_code, skill_label,
        ]  # fmt: skip

        r = rnd()
        count = 0 if r < 0.03 else 1 if r < 0.75 else 2 if r < 0.95 else 3
        sites: list[_Site] = []
        if count == 0:
            act_row([*person, *[""] * 30, p.authority, *[""] * 8][:generation])
        for n in range(count):
            where = home if n == 0 or rnd() < 0.8 else int(rnd() * n_towns)
            mode, site, sector, section, role, genre = g.activity(p, last, first, where)
            sites.append(site)
            row = [
                *person, mode, MODES[mode], *site[:SITE_COLUMNS], p.authority,
                sector, SECTORS.get(sector, ""), section, PHARMA_SECTIONS.get(section, ""),
                role, ROLES[role], genre, GENRES[genre],
            ]  # fmt: skip
            act_row(row[:generation] if generation != 56 else row)

        if rnd() >= mailbox_ratio:
            continue
        site = sites[0] if sites else None
        domain = _per_domain(g, p, site)
        mail_person = [
            id_type, id_pp, idnat, title, last_up, first, category[0], category[1], p.code,
            p.label, skill_code, skill_label, "O" if rnd() < 0.85 else "N",
        ]  # fmt: skip
        address = g.per_address(first_index, last_index, domain)
        bal_row(_mailbox_row("PER", address, mail_person, site))
        if len(sites) > 1 and rnd() < duplicate_rate:
            # As in the real file, a few addresses appear twice (here: with their 2nd practice).
            bal_row(_mailbox_row("PER", address, mail_person, sites[1]))
        if rnd() < second_mailbox:
            other = _per_domain(g, p, sites[-1] if sites else None)
            if other != domain:
                bal_row(_mailbox_row("PER", g.per_address(first_index, last_index, other),
                                     mail_person, site))  # fmt: skip
        if site is not None and rnd() < org_rate:
            bal_row(_org_row(g, site, last))


def _per_domain(g: _Generator, p: Profession, site: _Site | None) -> str:
    r = g.rnd()
    if site is not None and site.domain and r < 0.6:
        return site.domain
    r = g.rnd()
    if p.domain and r < 0.65:
        return p.domain
    if site is not None and r < 0.9:
        return REGIONS[site.region][0]
    return "pro.mssante.fr"


_EMPTY_PERSON = [""] * 13


def _mailbox_row(bal_type: str, address: str, person: list[str], site: _Site | None) -> list:
    """The 31 mailbox columns. ``person``: id type, id, IdNat, civility, last name, first
    name, category code and label, profession code and label, savoir-faire code and label,
    dématérialisation."""
    service = person[13] if len(person) > 13 else ""
    head = [bal_type, address, *person[:3]]
    if site is None:
        return [*head, "", "", service, *person[3:13], *[""] * 13]
    routing = site.cedex or f"{site.postcode} {_upper(site.town)}"
    return [
        *head, site.idnat_struct_type, site.idnat_struct, service, *person[3:13],
        site.name, site.sign, site.place, site.distribution, site.number, site.repeat,
        site.type_code, site.street, "", routing, site.postcode, site.department, "FRANCE",
    ]  # fmt: skip


def _org_row(g: _Generator, site: _Site, last: str) -> list:
    rnd = g.rnd
    if site.kind == "hospital":
        service = HOSPITAL_SERVICES[int(rnd() * len(HOSPITAL_SERVICES))]
        prefix = ORG_PREFIXES[int(rnd() * len(ORG_PREFIXES))]
        domain = site.domain or REGIONS[site.region][0]
        address = g.org_address(f"{prefix}.{service}", domain)
        label = "Service " + service.replace("-", " ")
    else:
        domain = REGIONS[site.region][0] if rnd() < 0.7 else "pro.mssante.fr"
        local = f"secretariat.{_slug(site.name)[:40].strip('-')}"
        address = g.org_address(local, domain)
        label = "Secrétariat"
    return _mailbox_row("ORG", address, [*_EMPTY_PERSON[:12], "O", label], site)
