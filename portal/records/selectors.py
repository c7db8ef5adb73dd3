"""Small reads of patients that decide nothing about charts.

Who may see which chart is records.access; what an opened chart shows is records.chart;
patient lists and search are records.search.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

from portal.records.access import RECORD_TYPES
from portal.records.crypto import blind_index
from portal.records.models import Patient
from portal.tenancy.models import Hospital

__all__ = [
    "RECORD_TYPES",
    "account_name_for_user",
    "patient_by_mrn",
    "patient_registrations_for_user",
    "user_is_patient",
]


def patient_registrations_for_user(*, user: User | AnonymousUser) -> list[Patient]:
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


def user_is_patient(*, user: User | AnonymousUser) -> bool:
    """Whether the account has a registration anywhere (the "My records" link): an EXISTS,
    not the registrations themselves. Signed-in pages read it with the user
    (accounts.selectors.auth_context_fetch); this is for everything else."""
    return user.is_authenticated and Patient._base_manager.filter(user=user).exists()


def patient_by_mrn(*, hospital: Hospital, mrn: str) -> Patient | None:
    """Registration lookup by MRN through its blind index (unscoped: used by services)."""
    token = blind_index(mrn, hospital_id=hospital.pk, purpose="mrn")
    return Patient._base_manager.filter(hospital=hospital, mrn_index=token).first()


def account_name_for_user(
    *, user: User | AnonymousUser, registrations: list[Patient] | None = None
) -> str:
    """The name the header greets an account by: the account's own full name (staff), else
    the name on the patient's own registration (kept encrypted there, never copied into the
    account in clear), else the username. `registrations`: when the request holds them."""
    if not user.is_authenticated:
        return ""
    full_name = user.get_full_name()
    if full_name:
        return full_name
    if registrations is None:
        own = Patient._base_manager.filter(user=user).order_by("hospital__name", "id").first()
    else:
        own = registrations[0] if registrations else None
    if own is not None:
        name = " ".join(str(part) for part in (own.given_name, own.family_name) if part)
        return name or user.get_username()
    return user.get_username()
