"""Portal entry checks: each asks the one gate (accounts.gates.entry_refusal) and activates
the hospital scope the view may read in."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from portal.accounts.gates import Audience, Refusal, entry_refusal
from portal.tenancy.scoping import hospital_scope

View = Callable[..., HttpResponse]

REFUSED = {
    Audience.STAFF: "This page is for hospital staff.",
    Audience.PATIENT: "This page is for patients.",
}


def _entry(request: HttpRequest, audience: Audience) -> HttpResponse | None:
    """None if the gate lets the request in; else the log-in page or a 403."""
    refusal = entry_refusal(request, audience)
    if refusal == Refusal.SIGN_IN:
        return redirect_to_login(request.get_full_path())
    if refusal is not None:
        raise PermissionDenied(REFUSED.get(audience, "This page is not for this account."))
    return None


def staff_required(view: View) -> View:
    """Staff of the active hospital, signed in with two factors; in that hospital's scope."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        refused = _entry(request, Audience.STAFF)
        if refused is not None:
            return refused
        with hospital_scope(request.hospital):
            return view(request, *args, **kwargs)

    return wrapper


def patient_required(view: View) -> View:
    """A user linked to at least one patient registration; scoped to those hospitals."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        refused = _entry(request, Audience.PATIENT)
        if refused is not None:
            return refused
        with hospital_scope([r.hospital_id for r in request.patient_registrations]):
            return view(request, *args, **kwargs)

    return wrapper


def account_required(view: View) -> View:
    """Any signed-in account acting for itself (proxy pages: what each account is shown
    there is decided by the selectors). No hospital scope."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        refused = _entry(request, Audience.ACCOUNT)
        if refused is not None:
            return refused
        return view(request, *args, **kwargs)

    return wrapper


def verified_session_required(view: View) -> View:
    """A signed-in account whose session passed its second factor whenever the account has
    or needs one (staff, admins, superusers; patients who turned it on). No hospital scope:
    for the account's own settings (its sign-in devices)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        refused = _entry(request, Audience.DEVICES)
        if refused is not None:
            return refused
        return view(request, *args, **kwargs)

    return wrapper
