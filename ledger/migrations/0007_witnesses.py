# Witnesses: their cosignatures of the log's checkpoints (append-only, like the log) and the
# portal's state of each witness (mutable, derived).

import django.db.models.deletion
from django.db import migrations, models

TABLE = "ledger_cosignature"


def install_triggers(apps, schema_editor):
    # The same refusal as the log's own tables (ledger_refuse_change, migration 0002).
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE TRIGGER {TABLE}_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )
    schema_editor.execute(
        f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
    )


def remove_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_update_delete ON {TABLE}")
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}")


class Migration(migrations.Migration):
    dependencies = [("ledger", "0006_event_facts_immutable")]

    operations = [
        migrations.CreateModel(
            name="WitnessState",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200, unique=True)),
                ("url", models.CharField(max_length=500)),
                ("vkey", models.CharField(max_length=400)),
                ("size", models.BigIntegerField(default=0)),
                ("cosigned_at", models.DateTimeField(blank=True, null=True)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("stopped", models.BooleanField(default=False)),
                ("last_status", models.IntegerField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True, default="")),
                ("last_error_at", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.CreateModel(
            name="Cosignature",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("witness", models.CharField(max_length=200)),
                ("vkey", models.CharField(max_length=400)),
                ("timestamp", models.BigIntegerField()),
                ("line", models.TextField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "checkpoint",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="cosignatures",
                        to="ledger.checkpoint",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["witness", "checkpoint"], name="ledger_cosig_witness")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("checkpoint", "witness", "vkey"), name="ledger_cosignature_once"
                    )
                ],
            },
        ),
        migrations.RunPython(install_triggers, remove_triggers),
    ]
