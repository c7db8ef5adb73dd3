from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def active_hospital(request: HttpRequest) -> dict:
    return {
        "portal_name": settings.PORTAL_NAME,
        "active_hospital": getattr(request, "hospital", None),
        "active_membership": getattr(request, "membership", None),
        "memberships": getattr(request, "memberships", []),
        # Evaluated only if a template asks, so pages that never show it pay no query.
        "is_patient": SimpleLazyObject(lambda: _is_patient(request)),
        # The admin site's own rule (its has_permission), for the header's Admin link.
        "may_administer": SimpleLazyObject(lambda: _may_administer(request)),
        # The header's greeting (staff by their name, patients by their registration's).
        "account_name": SimpleLazyObject(lambda: _account_name(request)),
    }


def _may_administer(request: HttpRequest) -> bool:
    from django.contrib import admin

    return bool(getattr(request, "user", None)) and admin.site.has_permission(request)


def _is_patient(request: HttpRequest) -> bool:
    from portal.records.selectors import user_is_patient

    if getattr(request, "patient_registrations", None):
        return True
    return user_is_patient(user=request.user)


def _account_name(request: HttpRequest) -> str:
    from portal.records.selectors import account_name_for_user

    return account_name_for_user(
        user=request.user, registrations=getattr(request, "patient_registrations", None)
    )
