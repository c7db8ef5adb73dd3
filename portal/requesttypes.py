"""Types for annotations only: what the portal's middleware and gates leave on a request,
and django-otp's addition to a user. Nothing here is instantiated or checked at run time;
code reaches these attributes through `typing.cast` to these types."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from django.http import HttpRequest

if TYPE_CHECKING:
    from portal.records.models import Patient
    from portal.tenancy.models import Hospital, Membership


class PortalRequest(HttpRequest):
    """An HttpRequest with the attributes the portal sets on it."""

    # The signed-in user's active memberships (tenancy: ActiveHospitalMiddleware).
    memberships: list[Membership]
    # The active membership and its hospital, if any (tenancy: ActiveHospitalMiddleware).
    membership: Membership | None
    hospital: Hospital | None
    # The account's own registrations (accounts.gates, for the patient portal's views).
    patient_registrations: list[Patient]


class OTPVerifiable(Protocol):
    """A user that django-otp's OTPMiddleware has given `is_verified()`."""

    def is_verified(self) -> bool: ...
