"""The chain's links (``seq``, ``prev_hash``, ``row_hash``) move out of the event rows into a
table of their own, ``audit_auditlink``, which the sealer inserts into: an event row is written
once and never updated, and sealing no longer rewrites it with all its indexes.

Data: every sealed event's link is copied to the new table (same seq and hashes: the chain and
its anchors are unchanged); events not sealed yet stay unlinked and are sealed by the next
``seal()``. ``audit_auditsealstate`` gets the sealer's ``low``: every event up to it is sealed.
On PostgreSQL the event table is locked against writers (SHARE ROW EXCLUSIVE) for the rest of the
migration's transaction first, so that no event is half-way in when ``low`` is chosen.

On PostgreSQL the append-only trigger on events goes back to the form of migration 0002 (no
UPDATE but ``actor_id`` set to NULL, no DELETE, no TRUNCATE), and links get the same trigger
without exception; both keep the ``mssweb.audit_maintenance = 'on'`` escape (Django's test flush,
retention purges).
"""

from importlib import import_module

import django.db.models.deletion
from django.db import migrations, models

_0002 = import_module("apps.audit.migrations.0002_append_only_trigger")
_0006 = import_module("apps.audit.migrations.0006_unsealed_events")

# The events' function as migration 0002 made it: sealing no longer updates an event.
EVENT_FUNCTION = _0002.CREATE.split("CREATE TRIGGER", 1)[0].replace(
    "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
)

LINK_TRIGGER = """
CREATE FUNCTION audit_auditlink_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mssweb.audit_maintenance', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_auditlink is append-only: % refused', TG_OP
        USING HINT = 'Links of the audit chain are never changed or removed.';
END;
$$;

CREATE TRIGGER audit_auditlink_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditlink
    FOR EACH ROW EXECUTE FUNCTION audit_auditlink_refuse_change();

CREATE TRIGGER audit_auditlink_no_truncate
    BEFORE TRUNCATE ON audit_auditlink
    FOR EACH STATEMENT EXECUTE FUNCTION audit_auditlink_refuse_change();
"""

DROP_LINK_TRIGGER = """
DROP TRIGGER IF EXISTS audit_auditlink_no_truncate ON audit_auditlink;
DROP TRIGGER IF EXISTS audit_auditlink_no_update_delete ON audit_auditlink;
DROP FUNCTION IF EXISTS audit_auditlink_refuse_change();
"""


def links_copy(apps, schema_editor):
    execute = schema_editor.execute
    postgresql = schema_editor.connection.vendor == "postgresql"
    if postgresql:
        execute("LOCK TABLE audit_auditevent IN SHARE ROW EXCLUSIVE MODE")
    execute(
        "INSERT INTO audit_auditlink (seq, event_id, prev_hash, row_hash) "
        "SELECT seq, id, prev_hash, row_hash FROM audit_auditevent WHERE seq IS NOT NULL"
    )
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT MIN(CASE WHEN seq IS NULL THEN id END), MAX(id) FROM audit_auditevent"
        )
        first_unsealed, last = cursor.fetchone()
    low = first_unsealed - 1 if first_unsealed is not None else last or 0
    execute("INSERT INTO audit_auditsealstate (id, low) VALUES (1, %s)", [low])


def links_copy_back(apps, schema_editor):
    # Migration 0006's trigger (restored before this runs) lets this one UPDATE through.
    schema_editor.execute(
        "UPDATE audit_auditevent SET seq = link.seq, prev_hash = link.prev_hash, "
        "row_hash = link.row_hash FROM audit_auditlink AS link "
        "WHERE audit_auditevent.id = link.event_id"
    )


def triggers_update(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(EVENT_FUNCTION, params=None)  # no placeholders: keep the % as is
        schema_editor.execute(LINK_TRIGGER, params=None)


def triggers_restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_LINK_TRIGGER, params=None)
        schema_editor.execute(_0006.FUNCTION, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_unsealed_events")]

    operations = [
        migrations.CreateModel(
            name="AuditLink",
            fields=[
                (
                    "seq",
                    models.BigIntegerField(primary_key=True, serialize=False, verbose_name="rang"),
                ),
                (
                    "event",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="link",
                        to="audit.auditevent",
                        verbose_name="événement",
                    ),
                ),
                ("prev_hash", models.CharField(max_length=64)),
                ("row_hash", models.CharField(max_length=64)),
            ],
            options={
                "verbose_name": "maillon de la chaîne d'audit",
                "verbose_name_plural": "maillons de la chaîne d'audit",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("seq__gte", 1)), name="audit_link_seq_positive"
                    ),
                    models.UniqueConstraint(
                        fields=("row_hash",), name="audit_link_row_hash_unique"
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="AuditSealState",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False),
                ),
                ("low", models.BigIntegerField(default=0)),
                ("mark_id", models.BigIntegerField(blank=True, null=True)),
                ("mark_xid", models.BigIntegerField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "état du scellement d'audit",
                "verbose_name_plural": "états du scellement d'audit",
            },
        ),
        migrations.RunPython(links_copy, links_copy_back, elidable=False),
        migrations.RemoveConstraint(model_name="auditevent", name="audit_seq_positive"),
        migrations.RemoveConstraint(model_name="auditevent", name="audit_seq_unique"),
        migrations.RemoveConstraint(model_name="auditevent", name="audit_row_hash_unique"),
        migrations.RemoveConstraint(model_name="auditevent", name="audit_sealed_whole"),
        migrations.RemoveIndex(model_name="auditevent", name="audit_unsealed"),
        migrations.RemoveField(model_name="auditevent", name="prev_hash"),
        migrations.RemoveField(model_name="auditevent", name="row_hash"),
        migrations.RemoveField(model_name="auditevent", name="seq"),
        migrations.RunPython(triggers_update, triggers_restore, elidable=False),
    ]
