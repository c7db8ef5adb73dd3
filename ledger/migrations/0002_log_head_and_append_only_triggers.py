"""The log head row, and (on PostgreSQL) triggers that make the log append-only in the
database itself: UPDATE, DELETE and TRUNCATE of entries, nodes and checkpoints are refused,
whoever connects. (SQLite, the demo database, relies on the ORM guard.)"""

from django.db import migrations

TABLES = ("ledger_entry", "ledger_node", "ledger_checkpoint")

FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def create_head(apps, schema_editor):
    LogHead = apps.get_model("ledger", "LogHead")
    LogHead.objects.get_or_create(pk=1, defaults={"size": 0, "chain_hash": bytes(32)})


def install_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)  # the body has literal % placeholders
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        schema_editor.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )


def remove_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table}")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [
        migrations.RunPython(create_head, migrations.RunPython.noop),
        migrations.RunPython(install_triggers, remove_triggers),
    ]
