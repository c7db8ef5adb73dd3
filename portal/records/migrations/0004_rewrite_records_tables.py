"""Rewrite the tables 0003 converted, so that the clear values leave the database files.

Dropping a column does not erase it: PostgreSQL only marks it dropped (every row keeps its
bytes until the row is rewritten), and the UPDATEs of 0003 left the previous row versions, clear
text included, as dead tuples; SQLite keeps freed pages as they were. VACUUM FULL (PostgreSQL)
and VACUUM (SQLite) rewrite them. Neither can run inside a transaction, hence a migration of its
own that is not atomic; run inside one anyway (a test's transaction), it does nothing, and the
operator runs the same VACUUM by hand (README, "Security").

Backups and archived WAL taken before 0003 still hold the clear values: expire them.
"""

from __future__ import annotations

from django.db import migrations

MODELS = (
    "encounter",
    "observation",
    "condition",
    "medicationrequest",
    "allergyintolerance",
    "immunization",
    "procedure",
    "document",
)


def rewrite_tables(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.in_atomic_block:
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for name in MODELS:
                table = apps.get_model("records", name)._meta.db_table
                cursor.execute(f"VACUUM FULL {quote(table)}")
        elif connection.vendor == "sqlite":
            cursor.execute("VACUUM")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("records", "0003_encrypt_codes_and_displays"),
    ]

    operations = [
        migrations.RunPython(rewrite_tables, migrations.RunPython.noop, elidable=True),
    ]
