"""Sessions are Django's own again (django.contrib.sessions, `django_session`): the portal's
copy with the user and device ids beside the data goes. Whoever was signed in signs in again
once; nothing else is lost."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_totp_devices_from_django_otp"),
    ]

    operations = [
        migrations.DeleteModel(name="Session"),
    ]
