"""Events are recorded unsealed and chained shortly after by apps.audit.services.seal().

``seq`` and ``row_hash`` stay unique among sealed rows through partial unique indexes, which an
unsealed row (the one a request writes) does not touch.

On PostgreSQL the append-only trigger of migration 0002 gains a third exception: the one UPDATE
that seals a row, filling ``seq``, ``prev_hash`` and ``row_hash`` of a row that had none of them
and changing nothing else. A sealed row stays as it was: sealing it again is refused.
"""

from importlib import import_module

from django.conf import settings
from django.db import migrations, models

FUNCTION = """
CREATE OR REPLACE FUNCTION audit_auditevent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mssweb.audit_maintenance', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;  -- NULL for TRUNCATE, ignored for statement triggers
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.actor_id IS NULL
           AND to_jsonb(NEW) - 'actor_id' = to_jsonb(OLD) - 'actor_id' THEN
            RETURN NEW;
        END IF;
        IF OLD.seq IS NULL AND OLD.row_hash IS NULL AND OLD.prev_hash = ''
           AND NEW.seq IS NOT NULL AND NEW.row_hash IS NOT NULL
           AND to_jsonb(NEW) - 'seq' - 'prev_hash' - 'row_hash'
               = to_jsonb(OLD) - 'seq' - 'prev_hash' - 'row_hash' THEN
            RETURN NEW;  -- sealing
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING HINT = 'Audit rows are never changed or removed.';
END;
$$;
"""

# Going back: the function as migration 0002 made it.
PREVIOUS_FUNCTION = import_module("apps.audit.migrations.0002_append_only_trigger").CREATE.split(
    "CREATE TRIGGER", 1
)[0].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def allow_sealing(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION, params=None)  # no placeholders: keep the % as is


def refuse_sealing(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS_FUNCTION, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0005_search_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='auditevent',
            options={'get_latest_by': 'id', 'verbose_name': "événement d'audit", 'verbose_name_plural': "événements d'audit"},
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='prev_hash',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='row_hash',
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='seq',
            field=models.BigIntegerField(blank=True, null=True, verbose_name='rang'),
        ),
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(condition=models.Q(('seq__isnull', True)), fields=['id'], name='audit_unsealed'),
        ),
        migrations.AddConstraint(
            model_name='auditevent',
            constraint=models.UniqueConstraint(condition=models.Q(('seq__isnull', False)), fields=('seq',), name='audit_seq_unique'),
        ),
        migrations.AddConstraint(
            model_name='auditevent',
            constraint=models.UniqueConstraint(condition=models.Q(('row_hash__isnull', False)), fields=('row_hash',), name='audit_row_hash_unique'),
        ),
        migrations.AddConstraint(
            model_name='auditevent',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('prev_hash', ''), ('row_hash__isnull', True), ('seq__isnull', True)), models.Q(('row_hash__isnull', False), ('seq__isnull', False)), _connector='OR'), name='audit_sealed_whole'),
        ),
        migrations.RunPython(allow_sealing, refuse_sealing, elidable=False),
    ]
