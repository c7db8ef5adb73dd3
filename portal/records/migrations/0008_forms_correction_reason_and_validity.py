"""Issue 16, forms that catch mistakes: a correction's reason (encrypted, on the version
that replaces another), a medication's end (valid until), and codes that may be empty (a
record described in free text). Rows written before digest as before (records.canonical
digests the new fields only when set)."""

from django.db import migrations, models

import portal.records.fields


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0007_search_tokens"),
    ]

    operations = [
        migrations.AddField(
            model_name="allergyintolerance",
            name="correction_reason",
            field=portal.records.fields.EncryptedTextField(
                blank=True, null=True, verbose_name="reason for the correction"
            ),
        ),
        migrations.AddField(
            model_name="clinicalnote",
            name="correction_reason",
            field=portal.records.fields.EncryptedTextField(
                blank=True, null=True, verbose_name="reason for the correction"
            ),
        ),
        migrations.AddField(
            model_name="condition",
            name="correction_reason",
            field=portal.records.fields.EncryptedTextField(
                blank=True, null=True, verbose_name="reason for the correction"
            ),
        ),
        migrations.AddField(
            model_name="document",
            name="correction_reason",
            field=portal.records.fields.EncryptedTextField(
                blank=True, null=True, verbose_name="reason for the correction"
            ),
        ),
        migrations.AddField(
            model_name="encounter",
            name="correction_reason",
            field=portal.records.fields.EncryptedTextField(
                blank=True, null=True, verbose_name="reason for the correction"
            ),
        ),
        migrations.AddField(
            model_name="immunization",
            name="correction_reason",
            field=portal.records.fields.EncryptedTextField(
                blank=True, null=True, verbose_name="reason for the correction"
            ),
        ),
        migrations.AddField(
            model_name="medicationrequest",
            name="correction_reason",
            field=portal.records.fields.EncryptedTextField(
                blank=True, null=True, verbose_name="reason for the correction"
            ),
        ),
        migrations.AddField(
            model_name="medicationrequest",
            name="valid_until",
            field=models.DateTimeField(blank=True, null=True, verbose_name="end (valid until)"),
        ),
        migrations.AddField(
            model_name="observation",
            name="correction_reason",
            field=portal.records.fields.EncryptedTextField(
                blank=True, null=True, verbose_name="reason for the correction"
            ),
        ),
        migrations.AddField(
            model_name="procedure",
            name="correction_reason",
            field=portal.records.fields.EncryptedTextField(
                blank=True, null=True, verbose_name="reason for the correction"
            ),
        ),
        migrations.AlterField(
            model_name="allergyintolerance",
            name="code",
            field=portal.records.fields.EncryptedCharField(blank=True, max_length=40, pad_to=48),
        ),
        migrations.AlterField(
            model_name="condition",
            name="code",
            field=portal.records.fields.EncryptedCharField(blank=True, max_length=40, pad_to=48),
        ),
        migrations.AlterField(
            model_name="immunization",
            name="vaccine_code",
            field=portal.records.fields.EncryptedCharField(blank=True, max_length=20, pad_to=48),
        ),
        migrations.AlterField(
            model_name="medicationrequest",
            name="authored_on",
            field=models.DateTimeField(verbose_name="start (authored on)"),
        ),
        migrations.AlterField(
            model_name="medicationrequest",
            name="code",
            field=portal.records.fields.EncryptedCharField(blank=True, max_length=40, pad_to=48),
        ),
        migrations.AlterField(
            model_name="procedure",
            name="code",
            field=portal.records.fields.EncryptedCharField(blank=True, max_length=40, pad_to=48),
        ),
    ]
