"""Tokens record whom they act as and whether two factors were used when they were issued.

Existing tokens cannot tell, so they get the narrowest safe answer: a token of an account that
has (or had) a membership becomes a staff token not known to be two-factor, which staff
endpoints refuse (and patient endpoints too: it is not a patient token) until it is
re-issued; any other account's token becomes a patient token, as it could only ever have
been used as one.
"""

from django.db import migrations, models


def mark_tokens_of_members_staff(apps, schema_editor):
    ApiToken = apps.get_model("api", "ApiToken")
    # Through the user's relation: any membership, active or not.
    ApiToken.objects.filter(user__memberships__isnull=False).update(
        audience="staff", two_factor=False
    )


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_initial"),
        ("tenancy", "0002_departments"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="audience",
            field=models.CharField(
                choices=[
                    ("patient", "Patient (my own records)"),
                    ("staff", "Staff (hospital work)"),
                ],
                default="patient",
                max_length=10,
                verbose_name="acts as",
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="apitoken",
            name="two_factor",
            field=models.BooleanField(
                default=False, verbose_name="issued after two-factor sign-in"
            ),
        ),
        migrations.RunPython(mark_tokens_of_members_staff, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="apitoken",
            constraint=models.CheckConstraint(
                condition=models.Q(("audience__in", ["patient", "staff"])),
                name="api_token_audience_known",
            ),
        ),
    ]
