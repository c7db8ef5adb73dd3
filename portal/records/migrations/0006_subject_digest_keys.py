"""Site keys: secrets stored wrapped under a master key, for what belongs to no hospital.

The first one keys the ledger's subject digests of events of no hospital (API tokens,
accounts); it is created on first use, like a hospital's first data key.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0005_live_grant_view"),
    ]

    operations = [
        migrations.CreateModel(
            name="SiteKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("purpose", models.CharField(max_length=64, unique=True)),
                ("master_key_id", models.CharField(max_length=32)),
                ("wrapped_key", models.BinaryField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("rewrapped_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "ordering": ["purpose"],
            },
        ),
    ]
