"""Portal entry checks. Each one also activates the hospital scope the view may read in."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from portal.tenancy.scoping import hospital_scope

View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """Staff of the active hospital, signed in with two factors."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if request.membership is None:
            raise PermissionDenied("This page is for hospital staff.")
        if not request.user.is_verified():
            # A patient session that later gained a staff role: staff pages need 2FA.
            return redirect_to_login(request.get_full_path())
        with hospital_scope(request.hospital):
            return view(request, *args, **kwargs)

    return wrapper


def verified_session_required(view: View) -> View:
    """A signed-in account whose session passed its second factor whenever the account has
    or needs one (staff, admins, superusers; patients who turned it on). No hospital scope:
    for the account's own settings (its sign-in devices)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        from portal.accounts.selectors import user_requires_otp

        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user.is_verified() and user_requires_otp(user=user):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def patient_required(view: View) -> View:
    """A user linked to at least one patient registration; scoped to those hospitals."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        from portal.records.selectors import patient_registrations_for_user

        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        registrations = patient_registrations_for_user(user=request.user)
        if not registrations:
            raise PermissionDenied("This page is for patients.")
        request.patient_registrations = registrations
        with hospital_scope([r.hospital_id for r in registrations]):
            return view(request, *args, **kwargs)

    return wrapper
