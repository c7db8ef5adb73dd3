from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def active_hospital(request: HttpRequest) -> dict:
    from portal.records.selectors import user_is_patient

    return {
        "portal_name": settings.PORTAL_NAME,
        "active_hospital": getattr(request, "hospital", None),
        "active_membership": getattr(request, "membership", None),
        "memberships": getattr(request, "memberships", []),
        # Evaluated only if a template asks, so pages that never show it pay no query.
        "is_patient": SimpleLazyObject(
            lambda: bool(
                getattr(request, "patient_registrations", None)
                or user_is_patient(user=request.user)
            )
        ),
    }
