"""Reading the national directory: search, a professional's record, recipient autocompletion.

Every search reads the slot in service (``DirectoryState``). Names are matched as prefixes of the
folded "last first" key, words in any order ("marie dupont" finds DUPONT Marie), through range
conditions that one btree serves. On PostgreSQL, a search that finds nothing retries with the
closest last names by trigram similarity over the small table of distinct names.
"""

import base64
import binascii
import itertools
import json
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Q, QuerySet
from django.http import Http404

from apps.directory.extracts import normalize_search
from apps.directory.models import SLOT_MODELS, Contact, DirectoryState

MAX_WORDS = 4
MAILBOX_CARD_FIELDS = (
    "address", "bal_type", "idnat", "civility", "last_name", "first_name", "profession_label",
    "structure_name", "service", "town",
)  # fmt: skip
FETCH_FACTOR = 3  # activity rows fetched per person wanted (people have 1–3 activities)


def person_display_name(civility: str, first_name: str, last_name: str) -> str:
    prefix = "Dr " if civility.upper() == "DR" else ""
    return f"{prefix}{first_name} {last_name}".strip()


def mailbox_display_name(
    *, bal_type: str, civility: str, first_name: str, last_name: str, structure_name: str,
    service: str,
) -> str:  # fmt: skip
    """ "Dr Hélène LEFÈVRE" for a personal mailbox, "CH de Lyon – Radiologie" for a structure's."""
    if bal_type == "PER" and last_name:
        return person_display_name(civility, first_name, last_name)
    return " – ".join(p for p in (structure_name, service) if p)


@dataclass
class Place:
    structure_name: str
    address: str
    postcode: str
    town: str
    department_code: str
    phone: str
    mode_label: str
    sector_label: str


@dataclass
class Person:
    idnat: str
    civility: str
    last_name: str
    first_name: str
    profession_code: str
    profession_label: str
    specialty_label: str
    has_mssante: bool
    places: list[Place] = field(default_factory=list)
    mailboxes: list[dict] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return person_display_name(self.civility, self.first_name, self.last_name)


@dataclass
class SearchPage:
    people: list[Person]
    next_cursor: str | None
    corrected_to: str | None = None
    available: bool = True


@dataclass(frozen=True)
class SearchFilters:
    query: str = ""
    profession: str = ""
    specialty: str = ""
    department: str = ""
    postcode: str = ""
    town: str = ""
    has_mssante: bool = False

    @property
    def empty(self) -> bool:
        return not (
            normalize_search(self.query)
            or self.profession
            or self.specialty
            or self.department
            or self.postcode
            or normalize_search(self.town)
        )


def active_slot() -> str | None:
    state = DirectoryState.objects.only("active_slot").first()
    return state.active_slot if state and state.active_slot else None


# --- Name matching --------------------------------------------------------------------------


def _upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix`` (ASCII keys)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def adjacent_condition(words: list[str], field_name: str = "key_lf") -> Q:
    """The words, in some order, are the start of the key: "marie dupont" and "dupont ma" both
    find "dupont marie". Each order is one narrow index range, so this is fast even for very
    common names; compound names ("lefevre dupont helene" found by "helene dupont") need the
    broader ``name_condition``."""
    words = list(dict.fromkeys(words))[:3]
    condition = Q()
    for order in itertools.permutations(words):
        prefix = " ".join(order)
        condition |= Q(**{f"{field_name}__gte": prefix, f"{field_name}__lt": _upper_bound(prefix)})
    return condition


def name_condition(words: list[str], field_name: str = "key_lf") -> Q:
    """Every word is the start of a word of the "last first" key, in any order: "dup m" and
    "marie dupont" find "dupont marie". One word must start the key (an index range): the first
    word if it has two letters or more, and any word of three letters or more, so a lone
    initial never drives the scan unless it is all there is."""
    words = list(dict.fromkeys(words))[:MAX_WORDS]
    leaders = [w for i, w in enumerate(words) if len(w) >= 3 or (i == 0 and len(w) == 2)]
    leaders = leaders or words[:1]
    condition = Q()
    for leader in leaders:
        branch = Q(**{f"{field_name}__gte": leader, f"{field_name}__lt": _upper_bound(leader)})
        for other in words:
            if other != leader:
                branch &= Q(**{f"{field_name}__contains": f" {other}"})
        condition |= branch
    return condition


def _similar_last_names(slot: str, word: str, limit: int = 3) -> list[str]:
    """Last names within a small edit distance of ``word`` (PostgreSQL), nearest and most
    common first. Searched in the table of distinct names, not the big one: the names with the
    same first letter and a close length, plus those sharing trigrams (a wrong first letter)."""
    if connection.vendor != "postgresql" or len(word) < 3:
        return []
    table = SLOT_MODELS[slot]["name"]._meta.db_table
    distance = 1 if len(word) <= 4 else 2
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT key FROM {table} "  # noqa: S608 - fixed table name
            "WHERE ((key >= %s AND key < %s AND length(key) BETWEEN %s AND %s) OR key %% %s) "
            "AND levenshtein_less_equal(key, %s, %s) <= %s "
            "ORDER BY levenshtein_less_equal(key, %s, %s), people DESC LIMIT %s",
            [
                word[0], _upper_bound(word[0]), len(word) - distance, len(word) + distance,
                word, word, distance, distance, word, distance, limit,
            ],
        )  # fmt: skip
        return [row[0] for row in cursor.fetchall()]


# A cursor carries the last person shown and how names were matched (A: words adjacent, the
# fast first try; B: any word start), so every page of one search uses the same rule.
def _encode_cursor(key: str, idnat: str, mode: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([key, idnat, mode]).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[str, str, str] | None:
    if not cursor:
        return None
    try:
        key, idnat, mode = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, TypeError):
        return None
    return (str(key), str(idnat), "A" if mode == "A" else "B")


def _filtered(qs: QuerySet, filters: SearchFilters) -> QuerySet:
    if filters.profession:
        qs = qs.filter(profession_code=filters.profession)
    if filters.specialty:
        qs = qs.filter(specialty_code=filters.specialty.upper())
    if filters.department:
        qs = qs.filter(department_code=filters.department.upper())
    if filters.postcode:
        qs = qs.filter(postcode__startswith=filters.postcode.strip())
    town = normalize_search(filters.town)
    if town:
        qs = qs.filter(town_key__gte=town, town_key__lt=_upper_bound(town))
    if filters.has_mssante:
        qs = qs.filter(has_mssante=True)
    return qs


def directory_search(
    *, filters: SearchFilters, cursor: str | None = None, limit: int = 20
) -> SearchPage:
    """People matching ``filters``, ordered by name, ``limit`` per page (keyset cursor)."""
    slot = active_slot()
    if slot is None:
        return SearchPage(people=[], next_cursor=None, available=False)
    if filters.empty:
        return SearchPage(people=[], next_cursor=None)
    words = normalize_search(filters.query).split()
    after = _decode_cursor(cursor)
    if after is not None:
        return _search_slot(slot, filters, words, after, limit, mode=after[2])
    # Several words: first the fast rule (words adjacent, in some order: "marie dupont", "dupont
    # ma"); only if it finds nobody, the broader one (any word start), which also finds compound
    # names ("helene lefevre" → LEFÈVRE-DUPONT Hélène) but reads many more rows.
    page = _search_slot(slot, filters, words, None, limit, mode="A" if len(words) > 1 else "B")
    if len(words) > 1 and not page.people:
        page = _search_slot(slot, filters, words, None, limit, mode="B")
    if not page.people and words:
        for candidate in _similar_last_names(slot, words[0]):
            corrected = [candidate, *words[1:]]
            page = _search_slot(slot, filters, corrected, None, limit, mode="B")
            if page.people:
                page.corrected_to = " ".join(corrected)
                break
    return page


def _search_slot(
    slot: str,
    filters: SearchFilters,
    words: list[str],
    after: tuple[str, str, str] | None,
    limit: int,
    *,
    mode: str,
) -> SearchPage:
    models = SLOT_MODELS[slot]
    qs = _filtered(models["activity"].objects.all(), filters)
    if words:
        qs = qs.filter(adjacent_condition(words) if mode == "A" else name_condition(words))
    if after is not None:
        key, idnat, _mode = after
        qs = qs.filter(key_lf__gte=key).filter(Q(key_lf__gt=key) | Q(idnat__gt=idnat))
    fetch = limit * FETCH_FACTOR + 1
    rows = list(qs.order_by("key_lf", "idnat", "id")[:fetch])
    people: list[Person] = []
    last_key: dict[str, str] = {}
    for row in rows:
        if people and people[-1].idnat == row.idnat:
            people[-1].places.append(_place(row))
            continue
        people.append(_person(row))
        last_key[row.idnat] = row.key_lf
    # A person whose rows may go on past the fetched ones is left for the next page.
    more = len(rows) == fetch
    if more and len(people) > 1:
        people.pop()
    next_cursor = None
    if len(people) > limit:
        people = people[:limit]
        more = True
    if more and people:
        next_cursor = _encode_cursor(last_key[people[-1].idnat], people[-1].idnat, mode)
    _attach_mailboxes(slot, people)
    return SearchPage(people=people, next_cursor=next_cursor)


def _person(row) -> Person:
    return Person(
        idnat=row.idnat,
        civility=row.civility,
        last_name=row.last_name,
        first_name=row.first_name,
        profession_code=row.profession_code,
        profession_label=row.profession_label,
        specialty_label=row.specialty_label,
        has_mssante=row.has_mssante,
        places=[_place(row)],
    )


def _place(row) -> Place:
    return Place(
        structure_name=row.structure_name,
        address=row.address,
        postcode=row.postcode,
        town=row.town,
        department_code=row.department_code,
        phone=row.phone,
        mode_label=row.mode_label,
        sector_label=row.sector_label,
    )


def _attach_mailboxes(slot: str, people: list[Person]) -> None:
    wanted = [p.idnat for p in people if p.has_mssante]
    if not wanted:
        return
    by_idnat: dict[str, list[dict]] = {}
    for box in (
        SLOT_MODELS[slot]["mailbox"]
        .objects.filter(idnat__in=wanted)
        .values("idnat", "address", "bal_type", "structure_name", "service")
        .order_by("address")
    ):
        by_idnat.setdefault(box["idnat"], []).append(box)
    for person in people:
        person.mailboxes = by_idnat.get(person.idnat, [])


def professional_get(*, idnat: str) -> Person:
    """One professional with all their activities and mailboxes, or 404."""
    slot = active_slot()
    if slot is None:
        raise Http404
    rows = list(SLOT_MODELS[slot]["activity"].objects.filter(idnat=idnat).order_by("id"))
    if not rows:
        raise Http404
    person = _person(rows[0])
    person.places.extend(_place(row) for row in rows[1:])
    person.has_mssante = True
    _attach_mailboxes(slot, [person])
    person.has_mssante = bool(person.mailboxes)
    return person


def mailbox_in_directory(*, address: str) -> dict | None:
    slot = active_slot()
    if slot is None:
        return None
    return (
        SLOT_MODELS[slot]["mailbox"]
        .objects.filter(address=address.strip().lower())
        .values(*MAILBOX_CARD_FIELDS)
        .first()
    )


# --- Autocompletion and contacts ----------------------------------------------------------------


def contacts_for_user(*, user, query: str = "") -> QuerySet[Contact]:
    qs = Contact.objects.filter(owner=user)
    words = normalize_search(query).split()
    if words:
        qs = qs.filter(name_condition(words, "key") | Q(email__startswith=query.strip().lower()))
    return qs.order_by("-is_favourite", "key")


def contact_get_for_user(*, user, contact_id: int) -> Contact:
    contact = Contact.objects.filter(owner=user, pk=contact_id).first()
    if contact is None:
        raise Http404
    return contact


def recipient_autocomplete(*, user, query: str, limit: int = 8) -> list[dict]:
    """Recipients for compose: the user's contacts first, then directory mailboxes."""
    query = query.strip()
    words = normalize_search(query).split()
    if not words and "@" not in query:
        return []
    results: list[dict] = []
    seen: set[str] = set()
    for contact in contacts_for_user(user=user, query=query)[:limit]:
        seen.add(contact.email)
        results.append(
            {
                "address": contact.email,
                "name": contact.display_name,
                "profession": contact.profession_label,
                "town": contact.town,
                "source": "contact",
                "favourite": contact.is_favourite,
            }
        )
    slot = active_slot()
    if slot is None or len(results) >= limit:
        return results[:limit]
    boxes = SLOT_MODELS[slot]["mailbox"].objects.all()
    if "@" in query:
        address = query.lower()
        boxes = boxes.filter(address__gte=address, address__lt=_upper_bound(address))
        boxes = boxes.order_by("address")
    else:
        boxes = boxes.filter(name_condition(words)).order_by("key_lf", "id")
    for box in boxes[: limit * 2]:
        if box.address in seen:
            continue
        seen.add(box.address)
        results.append(
            {
                "address": box.address,
                "name": mailbox_display_name(
                    bal_type=box.bal_type,
                    civility=box.civility,
                    first_name=box.first_name,
                    last_name=box.last_name,
                    structure_name=box.structure_name,
                    service=box.service,
                ),
                "profession": box.profession_label,
                "town": box.town,
                "source": "directory",
                "favourite": False,
            }
        )
        if len(results) >= limit:
            break
    return results
