"""Observations of every FHIR value type, category and with components (issue 17): the
value and unit become optional, the FHIR parts the columns cannot hold are kept encrypted,
the category takes FHIR's observation-category codes (and "" for none), and the chart
category "observations" gets its permission.

SQLite alters a column by rebuilding its table, which a view over the table forbids: the
view records_chart_contents (0005) is dropped first and created again, as it was, last.
"""

from django.db import migrations, models

import portal.records.fields

RECORD_TABLES = (
    "encounter", "observation", "condition", "medicationrequest", "allergyintolerance",
    "immunization", "procedure", "clinicalnote", "document",
)  # fmt: skip
PROBES = ",\n".join(
    f"  EXISTS (SELECT 1 FROM records_{name} t "  # noqa: S608 (table names, not input)
    f"WHERE t.patient_id = p.id AND t.status = 'active') AS {name}"
    for name in RECORD_TABLES
)
CREATE_CONTENTS = (
    f"CREATE VIEW records_chart_contents AS SELECT p.id AS patient_id,\n{PROBES}\n"
    "FROM records_patient p"
)
DROP_CONTENTS = "DROP VIEW IF EXISTS records_chart_contents"


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0008_forms_correction_reason_and_validity"),
    ]

    operations = [
        migrations.RunSQL(DROP_CONTENTS, CREATE_CONTENTS),
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
                ],
            },
        ),
        migrations.AddField(
            model_name="observation",
            name="components",
            field=portal.records.fields.EncryptedJSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="observation",
            name="effective_end",
            field=models.DateTimeField(blank=True, null=True, verbose_name="end of the period"),
        ),
        migrations.AddField(
            model_name="observation",
            name="fhir_details",
            field=portal.records.fields.EncryptedJSONField(
                blank=True, null=True, verbose_name="FHIR details"
            ),
        ),
        migrations.AddField(
            model_name="observation",
            name="issued",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="observation",
            name="value_fhir",
            field=portal.records.fields.EncryptedJSONField(
                blank=True, null=True, verbose_name="value (FHIR)"
            ),
        ),
        migrations.AlterField(
            model_name="observation",
            name="category",
            field=models.CharField(
                blank=True,
                choices=[
                    ("social-history", "Social history"),
                    ("vital-signs", "Vital signs"),
                    ("imaging", "Imaging"),
                    ("laboratory", "Laboratory"),
                    ("procedure", "Procedure"),
                    ("survey", "Survey"),
                    ("exam", "Exam"),
                    ("therapy", "Therapy"),
                    ("activity", "Activity"),
                    ("", "Other"),
                ],
                max_length=20,
            ),
        ),
        migrations.AlterField(
            model_name="observation",
            name="unit",
            field=portal.records.fields.EncryptedCharField(
                blank=True, max_length=32, null=True, pad_to=32
            ),
        ),
        migrations.AlterField(
            model_name="observation",
            name="value",
            field=portal.records.fields.EncryptedDecimalField(
                blank=True, decimal_places=3, max_digits=12, null=True
            ),
        ),
        migrations.RunSQL(CREATE_CONTENTS, DROP_CONTENTS),
    ]
