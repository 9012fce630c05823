"""On PostgreSQL, the database itself refuses to change or remove audit rows.

A trigger refuses UPDATE, DELETE and TRUNCATE on audit_auditevent, with two exceptions:
- an UPDATE that only sets actor_id to NULL (the SET_NULL of a deleted account; the hash covers
  the copied actor_ref and actor_label, not actor_id);
- a session or transaction with ``mssweb.audit_maintenance = 'on'``: Django's test flush
  (apps.audit.testing.allow_audit_flush) and a future retention purge.

Anyone who can set that variable, or owns the table, can get past the trigger: it stops
mistakes, and the hash chain (manage.py audit_verify) reveals what got past it. Other
databases have no trigger; the models refuse updates and deletes in Python.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION audit_auditevent_refuse_change() RETURNS trigger
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
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING HINT = 'Audit rows are never changed or removed.';
END;
$$;

CREATE TRIGGER audit_auditevent_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_refuse_change();

CREATE TRIGGER audit_auditevent_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_auditevent_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_auditevent_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_auditevent_no_update_delete ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_auditevent_refuse_change();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)  # no placeholders: keep the % as is


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger, elidable=False)]
