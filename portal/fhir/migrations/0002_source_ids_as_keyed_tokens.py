"""Source ids and parts are kept only as keyed tokens (fhir.models.import_source_token).

A sender's resource id is often its MRN or another identifier, and a part is a clinical code:
in clear they undid the encryption of the charts they point at. Existing rows are converted in
place (batches, so a large table does not fill memory; nothing is printed), then the clear
columns go. A token cannot be turned back into its id: going back puts the tokens in the old
columns, so the code before this migration no longer recognises earlier imports (a re-import
would then create their rows again).
"""

from django.db import migrations, models

BATCH = 500


def tokens_from_ids(apps, schema_editor):
    from portal.fhir.models import import_source_token

    ImportIdentity = apps.get_model("fhir", "ImportIdentity")
    rows = ImportIdentity._base_manager.order_by("pk")
    last = 0
    while True:
        batch = list(rows.filter(pk__gt=last)[:BATCH])
        if not batch:
            return
        for row in batch:
            row.source_token = import_source_token(hospital_id=row.hospital_id, value=row.source_id)
            row.part_token = import_source_token(
                hospital_id=row.hospital_id, value=row.part, purpose="part"
            )
        ImportIdentity._base_manager.bulk_update(batch, ["source_token", "part_token"])
        last = batch[-1].pk


def tokens_back_into_id_columns(apps, schema_editor):
    ImportIdentity = apps.get_model("fhir", "ImportIdentity")
    ImportIdentity._base_manager.update(
        source_id=models.F("source_token"), part=models.F("part_token")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("fhir", "0001_initial"),
        ("records", "0001_initial"),  # the hospitals' data keys, from which tokens are keyed
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="importidentity", name="fhir_import_identity_unique"
        ),
        migrations.AddField(
            model_name="importidentity",
            name="source_token",
            field=models.CharField(default="", max_length=32),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="importidentity",
            name="part_token",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.RunPython(tokens_from_ids, tokens_back_into_id_columns, elidable=False),
        migrations.RemoveField(model_name="importidentity", name="source_id"),
        migrations.RemoveField(model_name="importidentity", name="part"),
        migrations.AddConstraint(
            model_name="importidentity",
            constraint=models.UniqueConstraint(
                fields=("hospital", "resource_type", "source_token", "part_token"),
                name="fhir_import_identity_unique",
            ),
        ),
    ]
