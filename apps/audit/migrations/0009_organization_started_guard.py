"""On PostgreSQL, the database refuses to undo an organization's note that its trail began.

``Organization.audit_started_at`` is what tells ``verify_audit`` that an organization's chain
existed once its audit tables are emptied. With the note itself cleared, a wipe went unnoticed::

    SET LOCAL lightbox.audit_maintenance = on;
    TRUNCATE audit_auditevent, audit_auditchain;
    UPDATE organizations_organization SET audit_started_at = NULL;   -- verify_audit: exit 0

and so did deleting the organization's row once its events were gone (nothing PROTECTs it then).
A row-level BEFORE UPDATE OR DELETE trigger on ``organizations_organization`` refuses, unless the
session says it is maintenance (``lightbox.audit_maintenance``, as migration 0008), changing
``audit_started_at`` once it is set (setting it the first time is the chain's own work) and
deleting an organization whose trail began.

What this is and is not: the setting is an operator's switch against a mistake or a client that
does not know of it (a console, a script), not a barrier against whoever holds the application's
database role, which may set it (or drop the trigger, as its owner). The proof against that is
the anchors kept off the host (``verify_audit --anchors``): a chain they name that is gone, or
whose event no longer has its hash, is reported whatever the tables and this note say."""

from django.db import migrations

FUNCTION = "audit_organization_started_guard"
TRIGGER = "organizations_organization_audit_started"
TABLE = "organizations_organization"

CREATE = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('lightbox.audit_maintenance', true), '') = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.audit_started_at IS NOT NULL THEN
            RAISE EXCEPTION 'an organization whose audit trail began is never deleted (organization %)', OLD.id
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'deliberate maintenance: SET lightbox.audit_maintenance = on in this session first';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.audit_started_at IS NOT NULL AND NEW.audit_started_at IS DISTINCT FROM OLD.audit_started_at THEN
        RAISE EXCEPTION 'when an organization''s audit trail began is never changed (organization %)', OLD.id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'deliberate maintenance: SET lightbox.audit_maintenance = on in this session first';
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE};
CREATE TRIGGER {TRIGGER} BEFORE UPDATE OF audit_started_at OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();
"""

DROP = f"DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE};\nDROP FUNCTION IF EXISTS {FUNCTION}();\n"


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0008_truncate_trigger"),
        ("organizations", "0004_organization_audit_started_at"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger),
    ]
