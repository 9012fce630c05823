"""The audit trail: one insert-only, hash-chained table.

Rows are written by ``apps.audit.services.record`` only. Python refuses to update or delete
them (``save``, ``delete`` and the queryset's ``update``/``delete``); on PostgreSQL a trigger
(migration 0002) refuses it in the database too. ``manage.py audit_verify`` checks the chain.
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


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditEventImmutableError("Audit events are insert-only.")

    def delete(self):
        raise AuditEventImmutableError("Audit events are insert-only.")

    def bulk_create(self, *args, **kwargs):
        raise AuditEventImmutableError(
            "Audit events are written by audit.record() or audit.record_many()."
        )


class AuditEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    # Position in the hash chain: 1, 2, 3… without gaps, given under a lock by services.seal()
    # shortly after the event is recorded; empty until then (with prev_hash and row_hash).
    # Unique among sealed rows (constraint below): an unsealed row touches no index for it.
    seq = models.BigIntegerField(_("rang"), null=True, blank=True)
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
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    # NULL, not "", until sealed: the unique constraint below only covers sealed rows.
    row_hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

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
            # The rows waiting for the sealer: a few at any time, found without a scan.
            models.Index(
                fields=["id"], condition=models.Q(seq__isnull=True), name="audit_unsealed"
            ),
        ]
        constraints = [
            # Partial unique indexes: recording an event (an unsealed row) does not write them;
            # the keyset reads of the chain (``seq > n ORDER BY seq``) use the first one.
            models.UniqueConstraint(
                fields=["seq"], condition=models.Q(seq__isnull=False), name="audit_seq_unique"
            ),
            models.UniqueConstraint(
                fields=["row_hash"],
                condition=models.Q(row_hash__isnull=False),
                name="audit_row_hash_unique",
            ),
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_seq_positive"),
            # Sealed (a place and both hashes) or not yet (none of them).
            models.CheckConstraint(
                condition=models.Q(seq__isnull=True, row_hash__isnull=True, prev_hash="")
                | models.Q(seq__isnull=False, row_hash__isnull=False),
                name="audit_sealed_whole",
            ),
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
