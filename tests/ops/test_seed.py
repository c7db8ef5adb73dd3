from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from portal.accounts.models import TOTPDevice
from portal.ops.demo import DEMO_PASSWORD
from portal.records.models import Observation, Patient
from portal.tenancy.models import Hospital, Membership, Role


def _counts():
    User = get_user_model()
    return (
        Hospital.objects.count(),
        User.objects.count(),
        Membership._base_manager.count(),
        Patient._base_manager.count(),
        Observation._base_manager.count(),
        TOTPDevice.objects.count(),
    )


@pytest.mark.django_db
def test_seed_demo_creates_the_documented_data_and_is_idempotent():
    out = StringIO()
    call_command("seed_demo", "--patients", "5", "--records-per-patient", "4", stdout=out)
    text = out.getvalue()
    assert DEMO_PASSWORD in text
    assert "stmary.clinician" in text and "riverside.admin" in text
    slugs = set(Hospital.objects.values_list("slug", flat=True))
    assert {"st-mary", "riverside"} <= slugs
    for hospital in Hospital.objects.all():
        roles = set(
            Membership._base_manager.filter(hospital=hospital).values_list("role", flat=True)
        )
        assert roles == set(Role.values)
    # Staff have confirmed TOTP devices whose secrets were printed.
    clinician = get_user_model().objects.get(username="stmary.clinician")
    device = TOTPDevice.objects.get(user=clinician, confirmed=True)
    from base64 import b32encode

    assert b32encode(device.bin_key).decode() in text
    # Patients have log-ins; one is registered at both hospitals.
    both = Patient._base_manager.filter(user__username="patient1")
    assert both.values("hospital").distinct().count() == 2
    assert Patient._base_manager.filter(user__isnull=True).count() == 0
    assert get_user_model().objects.get(username="patient3").check_password(DEMO_PASSWORD)
    assert Observation._base_manager.filter(patient__user__username="patient2").count() == 4

    before = _counts()
    call_command("seed_demo", "--patients", "5", "--records-per-patient", "4", stdout=StringIO())
    assert _counts() == before

    out = StringIO()
    call_command("seed_demo", "--if-empty", "--show-logins", stdout=out)
    assert _counts() == before
    assert "already present" in out.getvalue() and "stmary.nurse" in out.getvalue()


@pytest.mark.django_db
def test_seed_demo_rejects_nonsense_sizes():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("seed_demo", "--patients", "0", stdout=StringIO())
    assert Hospital.objects.count() == 0
