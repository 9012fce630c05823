"""The audit trail: insert-only events, and the hash chain over them in a table of its own.

Events are written by ``apps.audit.services.record`` only, their links in the chain by
``apps.audit.services.seal``. Python refuses to update or delete either (``save``, ``delete``
and the queryset's ``update``/``delete``); on PostgreSQL triggers (migrations 0002 and 0007)
refuse it in the database too. ``manage.py audit_verify`` checks the chain.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.audit.events import Event


class AuditEventImmutableError(RuntimeError):
    """Raised on any attempt to change or delete an audit row through the ORM."""


def event_choices() -> list[tuple[int, str]]:
    # A callable, so adding an event to the enum does not need a migration.
    return [(event.value, event.label) for event in Event]


class _InsertOnlyQuerySet(models.QuerySet):
    """Refuses bulk writes: the rows are written by ``writer`` only and never changed."""

    rows = ""
    writer = ""

    def update(self, **kwargs):
        raise AuditEventImmutableError(f"{self.rows} are insert-only.")

    def delete(self):
        raise AuditEventImmutableError(f"{self.rows} are insert-only.")

    def bulk_create(self, *args, **kwargs):
        raise AuditEventImmutableError(f"{self.rows} are written by {self.writer}.")


class AuditEventQuerySet(_InsertOnlyQuerySet):
    rows, writer = "Audit events", "audit.record() or audit.record_many()"


class AuditEvent(models.Model):
    """One recorded event: written once by ``services.record`` and never changed (but for
    ``actor_id`` set to NULL when the account is deleted). Its place in the hash chain is its
    ``AuditLink``, added by ``services.seal`` shortly after; ``seq``, ``prev_hash`` and
    ``row_hash`` read it (None and "" until then): query with ``select_related("link")``."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(_("date"))
    event = models.PositiveSmallIntegerField(_("événement"), choices=event_choices)
    # SET_NULL, never CASCADE: a deleted account keeps its history. The (actor, -id) index below
    # serves lookups by actor, so the foreign key needs no index of its own.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("compte"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    # The actor's primary key and e-mail address when the event was recorded. The hash covers
    # these copies, not ``actor_id``, which becomes NULL when the account is deleted.
    actor_ref = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(_("acteur"), max_length=254, blank=True)
    ip = models.GenericIPAddressField(_("adresse IP"), null=True, blank=True)
    user_agent = models.CharField(_("navigateur"), max_length=300, blank=True)
    target_type = models.CharField(_("type de cible"), max_length=50, blank=True)
    target_id = models.CharField(_("identifiant de cible"), max_length=64, blank=True)
    # Ids and old/new values only: never message content, tokens or second-factor secrets.
    detail = models.JSONField(_("détail"), default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("événement d'audit")
        verbose_name_plural = _("événements d'audit")
        get_latest_by = "id"
        indexes = [
            models.Index(fields=["actor", "-id"], name="audit_actor_id_desc"),
            models.Index(fields=["event", "-id"], name="audit_event_id_desc"),
            # A target's rows newest first (My activity, the staff search, a message's trace).
            models.Index(fields=["target_type", "target_id", "-id"], name="audit_target_id_desc"),
            # The staff search by address, newest first. On PostgreSQL, migration 0005 also
            # builds a partial index on ``detail -> 'mailbox'`` (the staff search by mailbox).
            models.Index(fields=["ip", "-id"], name="audit_ip_id_desc"),
            models.Index(fields=["created_at"], name="audit_created_at"),
        ]

    def __str__(self) -> str:
        place = f"#{self.seq}" if self.seq is not None else "#-"
        return f"{place} {self.get_event_display()} by {self.actor_label or '-'}"

    def save(self, **kwargs) -> None:
        if not self._state.adding:
            raise AuditEventImmutableError("Audit events are insert-only.")
        raise AuditEventImmutableError("Write audit events with apps.audit.services.record().")

    def delete(self, *args, **kwargs):
        raise AuditEventImmutableError("Audit events are insert-only.")

    def _link(self) -> "AuditLink | None":
        try:
            return self.link
        except AuditLink.DoesNotExist:
            return None

    @property
    def seq(self) -> int | None:
        """The event's place in the chain (1, 2, 3…), None until sealed."""
        link = self._link()
        return link.seq if link is not None else None

    @property
    def prev_hash(self) -> str:
        link = self._link()
        return link.prev_hash if link is not None else ""

    @property
    def row_hash(self) -> str | None:
        link = self._link()
        return link.row_hash if link is not None else None


class AuditLinkQuerySet(_InsertOnlyQuerySet):
    rows, writer = "Audit links", "audit.seal()"


class AuditLink(models.Model):
    """An event's place in the hash chain, written once by ``services.seal`` (under the chain
    lock) and never changed: ``row_hash = sha256(prev_hash + canonical(event, seq))``, and
    ``prev_hash`` is the ``row_hash`` of the link at ``seq - 1`` (see ``apps.audit.chain``).

    The links are a table of their own so that recording an event is one INSERT of a row that
    is never updated: sealing adds links instead of rewriting event rows and their indexes.
    ``seq`` (the primary key) and ``row_hash`` are unique and the event has one link at most:
    a sealer that bypassed the lock would get an IntegrityError, never a fork."""

    seq = models.BigIntegerField(_("rang"), primary_key=True)
    event = models.OneToOneField(
        AuditEvent, verbose_name=_("événement"), on_delete=models.DO_NOTHING, related_name="link"
    )
    prev_hash = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=64)

    objects = AuditLinkQuerySet.as_manager()

    class Meta:
        verbose_name = _("maillon de la chaîne d'audit")
        verbose_name_plural = _("maillons de la chaîne d'audit")
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_link_seq_positive"),
            # A constraint rather than ``unique=True``: on PostgreSQL the latter also builds a
            # LIKE index on the column, one more B-tree on random keys for nothing.
            models.UniqueConstraint(fields=["row_hash"], name="audit_link_row_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq}"

    def save(self, **kwargs) -> None:
        raise AuditEventImmutableError("Audit links are written by apps.audit.services.seal().")

    def delete(self, *args, **kwargs):
        raise AuditEventImmutableError("Audit links are insert-only.")


class AuditSealState(models.Model):
    """The sealer's bookkeeping (one row), so that it finds the unsealed events without a scan:
    every event with ``id <= low`` is sealed (or was never committed). ``mark_id`` and
    ``mark_xid`` are the next ``low`` and when it becomes safe (see ``services.seal``).

    Not audit data: changing it can only make the sealer look at more rows, or skip some, which
    ``audit_verify`` reports (events below ``low`` without a link)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    low = models.BigIntegerField(default=0)
    mark_id = models.BigIntegerField(null=True, blank=True)
    mark_xid = models.BigIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = _("état du scellement d'audit")
        verbose_name_plural = _("états du scellement d'audit")

    def __str__(self) -> str:
        return f"<= {self.low}"


class AuditCheckpoint(models.Model):
    """What a retention purge removed from the start of the chain, so that the rest still
    verifies: rows ``first_seq``..``last_seq`` (``count`` of them) are gone, and ``last_hash`` is
    the ``row_hash`` of the last one, the ``prev_hash`` the first remaining row must carry.

    Checkpoints are insert-only and chained too (``prev_checkpoint_hash``, ``checkpoint_hash``,
    see ``apps.audit.chain.compute_checkpoint_hash``); the ``AUDIT_PURGED`` event recorded in the
    same transaction repeats the range and hash inside the audit chain itself, so editing the
    latest checkpoint is detected by ``audit_verify``.
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(_("date"))
    first_seq = models.BigIntegerField(_("premier rang purgé"))
    last_seq = models.BigIntegerField(_("dernier rang purgé"), unique=True)
    count = models.BigIntegerField(_("événements purgés"))
    last_hash = models.CharField(max_length=64)
    prev_checkpoint_hash = models.CharField(max_length=64)
    checkpoint_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        verbose_name = _("point de reprise d'audit")
        verbose_name_plural = _("points de reprise d'audit")
        get_latest_by = "last_seq"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(first_seq__gte=1)
                & models.Q(last_seq__gte=models.F("first_seq")),
                name="audit_checkpoint_range",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.first_seq}–{self.last_seq}"

    def save(self, **kwargs) -> None:
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise AuditEventImmutableError("Audit checkpoints are insert-only.")
        kwargs["force_insert"] = True
        super().save(**kwargs)

    def delete(self, *args, **kwargs):
        raise AuditEventImmutableError("Audit checkpoints are insert-only.")
