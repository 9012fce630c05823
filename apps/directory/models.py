"""The national directory (Annuaire Santé extracts), loaded in two slots A and B.

An import fills the slot that is not in use, builds its indexes, then flips
``DirectoryState.active_slot`` in one transaction: a search sees the old snapshot or the new one,
never half of one, and whatever vanished from the extract vanishes from search. The slot tables
carry no foreign keys (rows are replaced wholesale); contacts copy what they need.

Search keys (``key_lf``: "last first", folded by ``extracts.normalize_search``) are ASCII and
use the "C" collation on PostgreSQL, so one btree serves both prefix ranges and ordering.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core.fields import SearchKeyField

SLOTS = ("a", "b")


class ImportRun(models.Model):
    """One run of ``import_directory`` (or of the daily task): what it read, kept, refused."""

    class Status(models.TextChoices):
        RUNNING = "running", _("en cours")
        ACTIVE = "active", _("en service")
        SUPERSEDED = "superseded", _("remplacé")
        FAILED = "failed", _("échec")

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    slot = models.CharField(max_length=1, blank=True)
    activities_source = models.CharField(max_length=500, blank=True)
    mssante_source = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    activity_rows = models.PositiveIntegerField(default=0)
    mailbox_rows = models.PositiveIntegerField(default=0)
    rejected_rows = models.PositiveIntegerField(default=0)
    # {"reasons": {reason: count}, "samples": [{"file", "line", "reason"}, ...]} — no row content.
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("import de l'annuaire")
        verbose_name_plural = _("imports de l'annuaire")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M} {self.status}"


class DirectoryState(models.Model):
    """A single row: which slot searches read."""

    active_slot = models.CharField(max_length=1, blank=True)
    active_run = models.ForeignKey(
        ImportRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("état de l'annuaire")

    def __str__(self) -> str:
        return self.active_slot or "-"


class ActivityBase(models.Model):
    """One row per activity of a professional (a dentist with two practices has two rows):
    the search table."""

    idnat = models.CharField(max_length=12)
    id_type = models.CharField(max_length=1)
    civility = models.CharField(max_length=10, blank=True)
    last_name = models.CharField(max_length=120)
    first_name = models.CharField(max_length=120, blank=True)
    key_lf = SearchKeyField(max_length=200)  # "lefevre helene"
    profession_code = models.CharField(max_length=4)
    profession_label = models.CharField(max_length=80, blank=True)
    specialty_code = models.CharField(max_length=10, blank=True)
    specialty_label = models.CharField(max_length=120, blank=True)
    mode_label = models.CharField(max_length=40, blank=True)
    sector_label = models.CharField(max_length=120, blank=True)
    structure_name = models.CharField(max_length=200, blank=True)
    address = models.CharField(max_length=300, blank=True)
    postcode = models.CharField(max_length=10, blank=True)
    town = models.CharField(max_length=100, blank=True)
    town_key = SearchKeyField(max_length=100)
    department_code = models.CharField(max_length=3, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    has_mssante = models.BooleanField(default=False)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.last_name} {self.first_name} ({self.idnat})"


class MailboxBase(models.Model):
    """One MSSanté mailbox of the extract (PER: a professional's; ORG: a structure's)."""

    address = SearchKeyField(max_length=254)
    bal_type = models.CharField(max_length=3)
    idnat = models.CharField(max_length=12, blank=True)
    civility = models.CharField(max_length=10, blank=True)
    last_name = models.CharField(max_length=120, blank=True)
    first_name = models.CharField(max_length=120, blank=True)
    # "last first" for PER, the structure (and service) for ORG: what autocompletion searches.
    key_lf = SearchKeyField(max_length=200)
    profession_code = models.CharField(max_length=4, blank=True)
    profession_label = models.CharField(max_length=80, blank=True)
    specialty_label = models.CharField(max_length=120, blank=True)
    structure_name = models.CharField(max_length=200, blank=True)
    service = models.CharField(max_length=200, blank=True)
    postcode = models.CharField(max_length=10, blank=True)
    town = models.CharField(max_length=100, blank=True)
    department_code = models.CharField(max_length=3, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.address


class NameBase(models.Model):
    """The distinct folded last names of a snapshot: the small set typo tolerance searches
    (trigram index on PostgreSQL) before an indexed lookup in the big table."""

    key = SearchKeyField(max_length=120)
    people = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.key


def _slot_model(base: type[models.Model], name: str, slot: str, indexes: list) -> type:
    meta = type(
        "Meta",
        (),
        {
            "db_table": f"directory_{name}_{slot}",
            "indexes": indexes,
            "verbose_name": f"{name} {slot}",
        },
    )
    return type(
        f"{base.__name__.removesuffix('Base')}{slot.upper()}",
        (base,),
        {"__module__": __name__, "Meta": meta},
    )


def _activity_indexes(slot: str) -> list[models.Index]:
    def ix(*fields: str, suffix: str) -> models.Index:
        return models.Index(fields=list(fields), name=f"dir_act_{slot}_{suffix}")

    return [
        ix("key_lf", "idnat", "id", suffix="key"),
        ix("department_code", "key_lf", "idnat", "id", suffix="dept"),
        ix("profession_code", "department_code", "key_lf", suffix="prof"),
        ix("postcode", "key_lf", suffix="pc"),
        ix("town_key", "key_lf", suffix="town"),
        ix("idnat", suffix="idnat"),
    ]


def _mailbox_indexes(slot: str) -> list[models.Index]:
    return [
        models.Index(fields=["key_lf", "id"], name=f"dir_bal_{slot}_key"),
        models.Index(fields=["address"], name=f"dir_bal_{slot}_addr"),
        models.Index(fields=["idnat"], name=f"dir_bal_{slot}_idnat"),
    ]


ActivityA = _slot_model(ActivityBase, "activity", "a", _activity_indexes("a"))
ActivityB = _slot_model(ActivityBase, "activity", "b", _activity_indexes("b"))
MailboxA = _slot_model(MailboxBase, "mailbox", "a", _mailbox_indexes("a"))
MailboxB = _slot_model(MailboxBase, "mailbox", "b", _mailbox_indexes("b"))
NameA = _slot_model(NameBase, "name", "a", [models.Index(fields=["key"], name="dir_name_a_key")])
NameB = _slot_model(NameBase, "name", "b", [models.Index(fields=["key"], name="dir_name_b_key")])

SLOT_MODELS = {
    "a": {"activity": ActivityA, "mailbox": MailboxA, "name": NameA},
    "b": {"activity": ActivityB, "mailbox": MailboxB, "name": NameB},
}


class Contact(models.Model):
    """A user's own correspondent: copied from the directory (or typed), so it survives the
    nightly replacement of the directory."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contacts"
    )
    email = models.EmailField(_("adresse"), max_length=254)
    display_name = models.CharField(_("nom"), max_length=200)
    idnat = models.CharField(_("identifiant national"), max_length=12, blank=True)
    profession_label = models.CharField(_("profession"), max_length=120, blank=True)
    town = models.CharField(_("ville"), max_length=100, blank=True)
    is_favourite = models.BooleanField(_("favori"), default=False)
    note = models.TextField(_("note"), blank=True, max_length=2000)
    key = SearchKeyField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["-is_favourite", "key"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "email"], name="contact_owner_email_unique"),
        ]
        indexes = [models.Index(fields=["owner", "key"], name="contact_owner_key")]

    def __str__(self) -> str:
        return f"{self.display_name} <{self.email}>"


class SearchCount(models.Model):
    """Directory searches counted per user and day (proportionate to a public directory; the
    audit trail records imports, not every keystroke)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    searches = models.PositiveIntegerField(default=0)
    autocompletes = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "day"], name="searchcount_user_day"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day}"
