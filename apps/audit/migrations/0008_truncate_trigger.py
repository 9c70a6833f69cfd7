"""On PostgreSQL, the database itself refuses TRUNCATE of the audit tables.

The row-level triggers of 0004 and 0007 do not fire on TRUNCATE: ``TRUNCATE audit_auditevent,
audit_auditchain`` wiped the whole trail, and ``verify_audit`` then found nothing to check. A
statement-level BEFORE TRUNCATE trigger on both tables (which a TRUNCATE ... CASCADE from another
table fires too) raises unless the session says it is maintenance on purpose::

    SET lightbox.audit_maintenance = 'on';

The test settings set it on their connections (pytest-django flushes the tables with TRUNCATE
after each transactional test; ``manage.py flush`` elsewhere needs
``PGOPTIONS='-c lightbox.audit_maintenance=on'``). It stops an ordinary TRUNCATE, by mistake or
by a client that does not know of it; like the other triggers, not the table's owner, who can set
it or switch the trigger off: ``verify_audit`` reports an organization whose trail began but has
no chain any more (``Organization.audit_started_at``), and the anchors kept off the host say what
was there. Other databases rely on that check alone."""

from django.db import migrations

FUNCTION = "audit_refuse_truncate"
TABLES = {"audit_auditevent": "audit_auditevent_no_truncate", "audit_auditchain": "audit_auditchain_no_truncate"}

CREATE = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('lightbox.audit_maintenance', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit trail is never truncated: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'deliberate maintenance: SET lightbox.audit_maintenance = on in this session first';
END;
$$;
""" + "".join(f"""
DROP TRIGGER IF EXISTS {trigger} ON {table};
CREATE TRIGGER {trigger} BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}();
""" for table, trigger in TABLES.items())

DROP = "".join(f"DROP TRIGGER IF EXISTS {trigger} ON {table};\n" for table, trigger in TABLES.items()) + \
    f"DROP FUNCTION IF EXISTS {FUNCTION}();\n"


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0007_chain_head_trigger"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger),
    ]
