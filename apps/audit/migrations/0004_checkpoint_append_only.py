"""On PostgreSQL, audit checkpoints are insert-only too, with the same escape as the events
(``mssweb.audit_maintenance = 'on'``, for Django's test flush; the retention purge only inserts
checkpoints). What gets past the trigger is caught by ``audit_verify``: checkpoints are chained
and the latest one is repeated in the ``AUDIT_PURGED`` event of the audit chain."""

from django.db import migrations

CREATE = """
CREATE FUNCTION audit_auditcheckpoint_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mssweb.audit_maintenance', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_auditcheckpoint is append-only: % refused', TG_OP
        USING HINT = 'Audit checkpoints are never changed or removed.';
END;
$$;

CREATE TRIGGER audit_auditcheckpoint_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_auditcheckpoint_refuse_change();

CREATE TRIGGER audit_auditcheckpoint_no_truncate
    BEFORE TRUNCATE ON audit_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_auditcheckpoint_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_truncate ON audit_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_update_delete ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS audit_auditcheckpoint_refuse_change();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_checkpoint")]

    operations = [migrations.RunPython(create_trigger, drop_trigger, elidable=False)]
