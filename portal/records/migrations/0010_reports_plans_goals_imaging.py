"""Issue 17: DiagnosticReport, CarePlan, Goal and ImagingStudy (imported from FHIR), their
chart categories ("reports", "careplans"), and the chart contents view over the new tables.
(records_chart_contents is recreated with one EXISTS per record table, as in 0005.)"""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import portal.records.fields

RECORD_TABLES = (
    "encounter", "observation", "condition", "medicationrequest", "allergyintolerance",
    "immunization", "procedure", "clinicalnote", "document",
    "diagnosticreport", "imagingstudy", "careplan", "goal",
)  # fmt: skip
NEW_TABLES = RECORD_TABLES[-4:]


def contents_sql(tables):
    probes = ",\n".join(
        f"  EXISTS (SELECT 1 FROM records_{name} t "  # noqa: S608 (table names, not input)
        f"WHERE t.patient_id = p.id AND t.status = 'active') AS {name}"
        for name in tables
    )
    return f"CREATE VIEW records_chart_contents AS SELECT p.id AS patient_id,\n{probes}\n" + (
        "FROM records_patient p"
    )


def recreate_view(apps, schema_editor):
    schema_editor.execute("DROP VIEW IF EXISTS records_chart_contents")
    schema_editor.execute(contents_sql(RECORD_TABLES))


def restore_view(apps, schema_editor):
    schema_editor.execute("DROP VIEW IF EXISTS records_chart_contents")
    schema_editor.execute(contents_sql([t for t in RECORD_TABLES if t not in NEW_TABLES]))


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0009_observation_values"),
        ("tenancy", "0002_departments"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="patient",
            options={
                "ordering": ["id"],
                "permissions": [
                    ("view_chart_vitals", "Can view the chart's vital signs"),
                    ("view_chart_labs", "Can view the chart's laboratory results"),
                    (
                        "view_chart_observations",
                        "Can view the chart's other observations (social history, surveys, exams)",
                    ),
                    ("view_chart_conditions", "Can view the chart's problems"),
                    ("view_chart_medications", "Can view the chart's medications"),
                    ("view_chart_allergies", "Can view the chart's allergies"),
                    ("view_chart_immunizations", "Can view the chart's immunizations"),
                    ("view_chart_procedures", "Can view the chart's procedures"),
                    ("view_chart_encounters", "Can view the chart's encounters"),
                    (
                        "view_chart_notes",
                        "Can view the chart's clinical notes (not restricted ones)",
                    ),
                    ("view_chart_documents", "Can view the chart's documents"),
                    ("view_chart_reports", "Can view the chart's test reports and imaging"),
                    ("view_chart_careplans", "Can view the chart's care plans and goals"),
                ],
            },
        ),
        migrations.CreateModel(
            name="CarePlan",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("row_uuid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                (
                    "status",
                    models.CharField(
                        choices=[("active", "Active"), ("entered-in-error", "Entered in error")],
                        default="active",
                        max_length=20,
                    ),
                ),
                ("version", models.PositiveIntegerField(default=1)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "correction_reason",
                    portal.records.fields.EncryptedTextField(
                        blank=True, null=True, verbose_name="reason for the correction"
                    ),
                ),
                (
                    "plan_status",
                    models.CharField(default="active", max_length=20, verbose_name="status"),
                ),
                ("intent", models.CharField(default="plan", max_length=20)),
                ("category", portal.records.fields.EncryptedJSONField(default=list)),
                ("title", portal.records.fields.EncryptedTextField(blank=True, null=True)),
                ("description", portal.records.fields.EncryptedTextField(blank=True, null=True)),
                ("period_start", models.DateTimeField(verbose_name="start")),
                ("period_end", models.DateTimeField(blank=True, null=True, verbose_name="end")),
                ("activities", portal.records.fields.EncryptedJSONField(default=list)),
                (
                    "addresses",
                    portal.records.fields.EncryptedJSONField(
                        default=list, verbose_name="for the problems"
                    ),
                ),
                ("goals", portal.records.fields.EncryptedJSONField(default=list)),
                (
                    "encounter",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="records.encounter",
                    ),
                ),
                (
                    "hospital",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenancy.hospital",
                    ),
                ),
                (
                    "patient",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="records.patient",
                    ),
                ),
                (
                    "recorded_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "replaces",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="replaced_by",
                        to="records.careplan",
                    ),
                ),
            ],
            options={
                "abstract": False,
            },
        ),
        migrations.CreateModel(
            name="Goal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("row_uuid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                (
                    "status",
                    models.CharField(
                        choices=[("active", "Active"), ("entered-in-error", "Entered in error")],
                        default="active",
                        max_length=20,
                    ),
                ),
                ("version", models.PositiveIntegerField(default=1)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "correction_reason",
                    portal.records.fields.EncryptedTextField(
                        blank=True, null=True, verbose_name="reason for the correction"
                    ),
                ),
                (
                    "lifecycle_status",
                    models.CharField(default="active", max_length=20, verbose_name="status"),
                ),
                (
                    "achievement_status",
                    portal.records.fields.EncryptedJSONField(
                        blank=True, null=True, verbose_name="progress"
                    ),
                ),
                ("description", portal.records.fields.EncryptedJSONField(verbose_name="goal")),
                ("targets", portal.records.fields.EncryptedJSONField(default=list)),
                (
                    "addresses",
                    portal.records.fields.EncryptedJSONField(
                        default=list, verbose_name="for the problems"
                    ),
                ),
                ("start_date", models.DateField(blank=True, null=True)),
                ("status_date", models.DateField(blank=True, null=True)),
                (
                    "hospital",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenancy.hospital",
                    ),
                ),
                (
                    "patient",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="records.patient",
                    ),
                ),
                (
                    "recorded_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "replaces",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="replaced_by",
                        to="records.goal",
                    ),
                ),
            ],
            options={
                "abstract": False,
            },
        ),
        migrations.CreateModel(
            name="ImagingStudy",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("row_uuid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                (
                    "status",
                    models.CharField(
                        choices=[("active", "Active"), ("entered-in-error", "Entered in error")],
                        default="active",
                        max_length=20,
                    ),
                ),
                ("version", models.PositiveIntegerField(default=1)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "correction_reason",
                    portal.records.fields.EncryptedTextField(
                        blank=True, null=True, verbose_name="reason for the correction"
                    ),
                ),
                (
                    "study_status",
                    models.CharField(default="available", max_length=20, verbose_name="status"),
                ),
                ("started", models.DateTimeField()),
                (
                    "identifiers",
                    portal.records.fields.EncryptedJSONField(
                        default=list, verbose_name="study identifiers"
                    ),
                ),
                ("modality", portal.records.fields.EncryptedJSONField(default=list)),
                (
                    "procedure_code",
                    portal.records.fields.EncryptedJSONField(
                        default=list, verbose_name="procedures"
                    ),
                ),
                ("series", portal.records.fields.EncryptedJSONField(default=list)),
                (
                    "number_of_series",
                    models.PositiveIntegerField(blank=True, null=True, verbose_name="series"),
                ),
                (
                    "number_of_instances",
                    models.PositiveIntegerField(blank=True, null=True, verbose_name="images"),
                ),
                ("description", portal.records.fields.EncryptedTextField(blank=True, null=True)),
                (
                    "encounter",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="records.encounter",
                    ),
                ),
                (
                    "hospital",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenancy.hospital",
                    ),
                ),
                (
                    "patient",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="records.patient",
                    ),
                ),
                (
                    "recorded_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "replaces",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="replaced_by",
                        to="records.imagingstudy",
                    ),
                ),
            ],
            options={
                "abstract": False,
            },
        ),
        migrations.CreateModel(
            name="DiagnosticReport",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("row_uuid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                (
                    "status",
                    models.CharField(
                        choices=[("active", "Active"), ("entered-in-error", "Entered in error")],
                        default="active",
                        max_length=20,
                    ),
                ),
                ("version", models.PositiveIntegerField(default=1)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "correction_reason",
                    portal.records.fields.EncryptedTextField(
                        blank=True, null=True, verbose_name="reason for the correction"
                    ),
                ),
                (
                    "report_status",
                    models.CharField(default="final", max_length=20, verbose_name="status"),
                ),
                ("code", portal.records.fields.EncryptedJSONField(verbose_name="test")),
                ("category", portal.records.fields.EncryptedJSONField(default=list)),
                ("effective_at", models.DateTimeField(verbose_name="effective time")),
                ("issued", models.DateTimeField(blank=True, null=True)),
                (
                    "results",
                    portal.records.fields.EncryptedJSONField(default=list, verbose_name="results"),
                ),
                (
                    "presented_form",
                    portal.records.fields.EncryptedJSONField(
                        default=list, verbose_name="report text"
                    ),
                ),
                ("conclusion", portal.records.fields.EncryptedTextField(blank=True, null=True)),
                (
                    "conclusion_code",
                    portal.records.fields.EncryptedJSONField(
                        default=list, verbose_name="conclusion (coded)"
                    ),
                ),
                (
                    "encounter",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="records.encounter",
                    ),
                ),
                (
                    "hospital",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenancy.hospital",
                    ),
                ),
                (
                    "patient",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="records.patient",
                    ),
                ),
                (
                    "recorded_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "replaces",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="replaced_by",
                        to="records.diagnosticreport",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["patient", "effective_at"], name="records_dia_patient_5a6df5_idx"
                    )
                ],
            },
        ),
        *(
            migrations.AddField(
                model_name="chartcontents",
                name=name,
                field=models.BooleanField(default=False),
                preserve_default=False,
            )
            for name in NEW_TABLES
        ),
        migrations.RunPython(recreate_view, restore_view),
    ]
