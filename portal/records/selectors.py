from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, QuerySet

from portal.records.models import Patient
from portal.tenancy.models import Hospital


def patient_registrations_for_user(*, user: AbstractBaseUser | AnonymousUser) -> list[Patient]:
    """The account's own registrations at every hospital, in one query.

    Like memberships, this decides the patient portal's hospital scope, so it reads through
    the base manager filtered by the user: it only ever returns the user's own rows.
    """
    if not user.is_authenticated:
        return []
    return list(
        Patient._base_manager.filter(user=user)
        .select_related("hospital")
        .order_by("hospital__name", "id")
    )


def patient_list_for_hospital(*, hospital: Hospital) -> QuerySet[Patient]:
    return (
        Patient.objects.filter(hospital=hospital)
        .annotate(observation_count=Count("observations"))
        .order_by("family_name", "given_name", "id")
    )
