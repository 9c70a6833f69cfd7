"""On PostgreSQL, the database itself refuses UPDATE and DELETE of audit events.

A row-level BEFORE trigger raises on every UPDATE or DELETE of audit_auditevent, whoever sends it
(the ORM, raw SQL, a console). TRUNCATE fires no row-level trigger, so test teardown (pytest-django
flushes with TRUNCATE) and an operator's deliberate purge still work. Other databases rely on the
model's refusals (apps.audit.models)."""

from django.db import migrations

TRIGGER = "audit_auditevent_append_only"
FUNCTION = "audit_refuse_change"

CREATE = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS {TRIGGER} ON audit_auditevent;
CREATE TRIGGER {TRIGGER} BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();
"""

DROP = f"""
DROP TRIGGER IF EXISTS {TRIGGER} ON audit_auditevent;
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
        ("audit", "0003_chain"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger),
    ]
