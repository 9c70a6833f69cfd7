"""On PostgreSQL, the database itself keeps each chain's head moving forward only.

``AuditChain`` is the one audit table the portal updates: appending an event claims the next seq
(``seq = seq + 1``) and then sets ``last_hash`` to the new event's hash. A row-level BEFORE trigger
refuses anything else from any client: deleting a head, changing its key, moving its seq back, or
setting a ``last_hash`` that is not the hash of the chain's event at the head's seq. A head moved
by hand would otherwise make ``verify_audit`` report a cut trail, or hide one. Like the events'
trigger (0004), TRUNCATE fires no row trigger, so test flushes still work."""

from django.db import migrations

TRIGGER = "audit_auditchain_forward_only"
FUNCTION = "audit_chain_head_guard"

CREATE = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit chain heads are never deleted: % refused on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.key <> OLD.key OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'audit chain heads only move forward: % refused on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.last_hash IS DISTINCT FROM OLD.last_hash AND NOT EXISTS (
        SELECT 1 FROM audit_auditevent e
        WHERE e.seq = NEW.seq AND e.hash = NEW.last_hash
          AND CASE WHEN NEW.key = 0 THEN e.organization_id IS NULL ELSE e.organization_id = NEW.key END
    ) THEN
        RAISE EXCEPTION 'an audit chain head names its last event: % refused on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS {TRIGGER} ON audit_auditchain;
CREATE TRIGGER {TRIGGER} BEFORE UPDATE OR DELETE ON audit_auditchain
    FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();
"""

DROP = f"""
DROP TRIGGER IF EXISTS {TRIGGER} ON audit_auditchain;
DROP FUNCTION IF EXISTS {FUNCTION}();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0006_target_index"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger),
    ]
