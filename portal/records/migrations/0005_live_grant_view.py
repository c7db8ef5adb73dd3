"""The live grants as one database view, records_live_grant (records.models.LiveGrant), and
which record types each chart holds, records_chart_contents (records.models.ChartContents).

The time window is written here once, with the database's own clock: PostgreSQL's
statement_timestamp() (not now(), which stands still for a whole transaction), SQLite's
strftime('%f', 'now') compared with Django's text timestamps ("YYYY-MM-DD HH:MM:SS[.ffffff]",
UTC), to the millisecond and rounded so that both ends close early, never late.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

NOW = {
    # (a grant has started when starts_at <= this, is over when expires_at <= that)
    "postgresql": ("statement_timestamp()", "statement_timestamp()"),
    "sqlite": (
        "strftime('%Y-%m-%d %H:%M:%f', 'now')",
        "strftime('%Y-%m-%d %H:%M:%f', 'now') || '999'",
    ),
}

BRANCH = """
SELECT {key} AS id, {user} AS user_id, {group} AS group_id, {patient} AS patient_id,
       {note} AS note_id, p.codename AS codename, g.source AS source, g.expires_at AS expires_at
FROM {table} g {members}JOIN auth_permission p ON p.id = g.permission_id
WHERE (g.starts_at IS NULL OR g.starts_at <= {started})
  AND (g.expires_at IS NULL OR g.expires_at > {ended})"""


def view_sql(vendor: str) -> str:
    started, ended = NOW[vendor]
    # Every branch gives each column the same type (PostgreSQL pushes a filter down into
    # the branches of a UNION ALL only then).
    no_group, no_id = "CAST(NULL AS INTEGER)", "CAST(NULL AS BIGINT)"
    branches = [
        BRANCH.format(
            key="'u' || CAST(g.id AS TEXT)",
            user="g.user_id",
            group=no_group,
            patient="g.content_object_id",
            note=no_id,
            table="records_patientuserobjectpermission",
            members="",
            started=started,
            ended=ended,
        ),
        BRANCH.format(
            key="'g' || CAST(g.id AS TEXT) || ':' || CAST(m.user_id AS TEXT)",
            user="m.user_id",
            group="g.group_id",
            patient="g.content_object_id",
            note=no_id,
            table="records_patientgroupobjectpermission",
            members="JOIN auth_user_groups m ON m.group_id = g.group_id ",
            started=started,
            ended=ended,
        ),
        BRANCH.format(
            key="'n' || CAST(g.id AS TEXT)",
            user="g.user_id",
            group=no_group,
            patient=no_id,
            note="g.content_object_id",
            table="records_clinicalnoteuserobjectpermission",
            members="",
            started=started,
            ended=ended,
        ),
    ]
    return "CREATE VIEW records_live_grant AS" + "\nUNION ALL".join(branches)


RECORD_TABLES = (
    "encounter", "observation", "condition", "medicationrequest", "allergyintolerance",
    "immunization", "procedure", "clinicalnote", "document",
)  # fmt: skip


def contents_sql() -> str:
    """Which record types each chart holds: one EXISTS per record table (an index probe),
    evaluated only for the patients a query joins it to."""
    probes = ",\n".join(
        f"  EXISTS (SELECT 1 FROM records_{name} t "  # noqa: S608 (table names, not input)
        f"WHERE t.patient_id = p.id AND t.status = 'active') AS {name}"
        for name in RECORD_TABLES
    )
    return f"CREATE VIEW records_chart_contents AS SELECT p.id AS patient_id,\n{probes}\n" + (
        "FROM records_patient p"
    )


def create_view(apps, schema_editor):
    schema_editor.execute(view_sql(schema_editor.connection.vendor))
    schema_editor.execute(contents_sql())


def drop_view(apps, schema_editor):
    schema_editor.execute("DROP VIEW IF EXISTS records_chart_contents")
    schema_editor.execute("DROP VIEW IF EXISTS records_live_grant")


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("records", "0004_rewrite_records_tables"),
    ]

    operations = [
        migrations.CreateModel(
            name="LiveGrant",
            fields=[
                ("id", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("codename", models.CharField(max_length=100)),
                ("source", models.CharField(max_length=64)),
                ("expires_at", models.DateTimeField(null=True)),
                (
                    "group",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="auth.group",
                    ),
                ),
                (
                    "note",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="records.clinicalnote",
                    ),
                ),
                (
                    "patient",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="records.patient",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"db_table": "records_live_grant", "managed": False},
        ),
        migrations.CreateModel(
            name="ChartContents",
            fields=[
                (
                    "patient",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="contents",
                        serialize=False,
                        to="records.patient",
                    ),
                ),
                ("encounter", models.BooleanField()),
                ("observation", models.BooleanField()),
                ("condition", models.BooleanField()),
                ("medicationrequest", models.BooleanField()),
                ("allergyintolerance", models.BooleanField()),
                ("immunization", models.BooleanField()),
                ("procedure", models.BooleanField()),
                ("clinicalnote", models.BooleanField()),
                ("document", models.BooleanField()),
            ],
            options={"db_table": "records_chart_contents", "managed": False},
        ),
        migrations.RunPython(create_view, drop_view),
    ]
