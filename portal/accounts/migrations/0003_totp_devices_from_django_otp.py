"""Move django-otp's TOTP devices (secret in clear, hex) to accounts.TOTPDevice (secret
encrypted under the master key ring), so that nobody is locked out, and empty the old table.

Each device keeps its user, name, confirmation, clock settings, replay counter (last_t),
throttling and times; it gets a new id, so a session verified by the old device signs in
again once. Reversible: going back moves the devices back (in clear, as django-otp keeps them).
"""

import uuid
from binascii import hexlify, unhexlify

from django.db import migrations

# As accounts.TOTPDevice.key_aad() binds a secret; spelled out here, as migrations must be.
LABEL, FIELD = "accounts.totpdevice", "key"
COPIED = [
    "name",
    "confirmed",
    "step",
    "t0",
    "digits",
    "tolerance",
    "drift",
    "last_t",
    "throttling_failure_timestamp",
    "throttling_failure_count",
    "last_used_at",
]


def _aad(row_uuid, user_id):
    from portal.records import crypto

    return crypto.account_secret_aad(
        model_label=LABEL, field=FIELD, row=str(row_uuid), user_id=user_id
    )


def forwards(apps, schema_editor):
    from portal.records import crypto

    Old = apps.get_model("otp_totp", "TOTPDevice")
    New = apps.get_model("accounts", "TOTPDevice")
    for old in Old.objects.order_by("pk").iterator():
        row_uuid = uuid.uuid4()
        master_id, blob = crypto.account_secret_encrypt(
            unhexlify(old.key.encode()), aad=_aad(row_uuid, old.user_id)
        )
        new = New.objects.create(
            user_id=old.user_id,
            row_uuid=row_uuid,
            key_master_id=master_id,
            encrypted_key=blob,
            **{name: getattr(old, name) for name in COPIED},
        )
        New.objects.filter(pk=new.pk).update(created_at=old.created_at)
    # The clear-text secrets go: the old table stays (django-otp's app keeps its migration
    # history) but holds nothing.
    Old.objects.all().delete()


def backwards(apps, schema_editor):
    from portal.records import crypto

    Old = apps.get_model("otp_totp", "TOTPDevice")
    New = apps.get_model("accounts", "TOTPDevice")
    for new in New.objects.order_by("pk").iterator():
        secret = crypto.account_secret_decrypt(
            new.encrypted_key,
            master_key_id=new.key_master_id,
            aad=_aad(new.row_uuid, new.user_id),
        )
        old = Old.objects.create(
            user_id=new.user_id,
            key=hexlify(secret).decode(),
            **{name: getattr(new, name) for name in COPIED},
        )
        Old.objects.filter(pk=old.pk).update(created_at=new.created_at)
    New.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_totp_device"),
        ("otp_totp", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
