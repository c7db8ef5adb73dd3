from __future__ import annotations

from base64 import b32encode

from django.contrib import messages
from django.contrib.auth import authenticate, logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts import selectors, services
from portal.accounts.decorators import verified_session_required
from portal.accounts.forms import LoginForm, NewDeviceForm, SwitchHospitalForm, TokenForm
from portal.tenancy import services as tenancy_services
from portal.tenancy.selectors import hospital_ids_administered_for_request


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("accounts:home")


def _remember_next(request: HttpRequest) -> None:
    request.session["login_next"] = _next_url(request)


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = authenticate(
            request,
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password"],
        )
        if user is None:
            # Same words for a wrong password and an unknown user. A lockout is turned into
            # its own page by django-axes' middleware.
            form.add_error(None, "The username or password is not correct.")
        else:
            _remember_next(request)
            if selectors.user_requires_otp(user=user):
                services.login_pending_start(request=request, user=user, backend=user.backend)
                if selectors.totp_device_confirmed(user=user) is None:
                    return redirect("accounts:totp_setup")
                return redirect("accounts:totp_verify")
            services.login_complete(request=request, user=user, backend=user.backend, device=None)
            return redirect(request.session.pop("login_next", reverse("accounts:home")))
    return render(
        request,
        "accounts/login.html",
        {"form": form, "next": request.GET.get("next", "")},
        status=400 if form.errors else 200,
    )


def _token_step(request: HttpRequest, *, setup: bool) -> HttpResponse:
    pending = services.login_pending_get(request=request)
    if pending is None:
        messages.info(request, "Please sign in again.")
        return redirect("accounts:login")
    user, backend = pending
    has_device = selectors.totp_device_confirmed(user=user) is not None
    if setup and has_device:
        # Enrolment during log-in is only for an account with no confirmed device; an
        # account that has one signs in with it (adding another needs a signed-in session).
        return redirect("accounts:totp_verify")
    if not has_device and (not setup or not selectors.user_role_requires_otp(user=user)):
        # The device went (reset, turned off) since the password step: start again, and
        # the password step decides what comes next.
        services.login_pending_end(request=request)
        messages.info(request, "Please sign in again.")
        return redirect("accounts:login")
    device = services.login_pending_enrolment_device(request=request, user=user) if setup else None
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token = form.cleaned_data["token"]
        if setup:
            try:
                matched = services.totp_enrol_confirm(user=user, device_id=device.pk, token=token)
            except services.TwoFactorRefused:
                # Confirmed in another session meanwhile (or expired): the GET decides.
                return redirect("accounts:totp_setup")
        else:
            # django-otp throttles a device after a wrong code (1 s, 2 s, 4 s, ...).
            matched = services.totp_code_check(user=user, token=token)
        if matched is not None:
            services.login_complete(request=request, user=user, backend=backend, device=matched)
            return redirect(request.session.pop("login_next", reverse("accounts:home")))
        if not services.login_pending_token_failed(request=request, user=user):
            messages.error(request, "Too many wrong codes. Please sign in again.")
            return redirect("accounts:login")
        form.add_error(
            "token",
            "That code is not correct or has expired. After a wrong code, wait a few seconds "
            "before the next try.",
        )
    context = {
        "form": form,
        "setup": setup,
        "device": device,
        "totp_secret": b32encode(device.bin_key).decode() if device else "",
        "username": user.get_username(),
    }
    return render(request, "accounts/totp.html", context, status=400 if form.errors else 200)


@sensitive_post_parameters("token")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def totp_verify_view(request: HttpRequest) -> HttpResponse:
    return _token_step(request, setup=False)


@sensitive_post_parameters("token")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def totp_setup_view(request: HttpRequest) -> HttpResponse:
    return _token_step(request, setup=True)


# --- two-factor sign-in: the account's own devices --------------------------------------------

NEW_DEVICE = "two_factor_new_device"  # the session's device being added, until confirmed
WRONG_CODE = (
    "That code is not correct or has expired. Each code is accepted once: wait for the "
    "next one (after a wrong code, also a few seconds) before trying again."
)


def _too_many_wrong_codes(request: HttpRequest) -> HttpResponse:
    logout(request)
    messages.error(request, "Too many wrong codes: you were signed out. Please sign in again.")
    return redirect("accounts:login")


def _overview(request: HttpRequest, *, status: int = 200) -> HttpResponse:
    user = request.user
    devices = selectors.totp_devices_for_user(user=user)
    must_keep = selectors.user_role_requires_otp(user=user)
    context = {
        "devices": devices,
        "must_keep": must_keep,
        "can_remove": len(devices) > 1,
        "form": TokenForm(),
    }
    return render(request, "accounts/two_factor.html", context, status=status)


@never_cache
@verified_session_required
@require_http_methods(["GET"])
def two_factor_view(request: HttpRequest) -> HttpResponse:
    return _overview(request)


@sensitive_post_parameters("new_token", "current_token", "password")
@never_cache
@verified_session_required
@require_http_methods(["GET", "POST"])
def two_factor_add_view(request: HttpRequest) -> HttpResponse:
    """Add an authenticator app (or replace one: `?replace=<id>`; or, for a patient with
    none, turn two-factor sign-in on). The new app's secret is shown on this page only, to
    this session only; it counts once a code from it and a current code (or, with no app
    yet, the password) are accepted."""
    user = request.user
    devices = selectors.totp_devices_for_user(user=user)
    replace_id = request.GET.get("replace")
    replace = selectors.access_totp_device(user=user, device_id=replace_id) if replace_id else None
    device = services.totp_device_for_enrolment(
        user=user, device_id=request.session.get(NEW_DEVICE)
    )
    request.session[NEW_DEVICE] = device.pk
    form = NewDeviceForm(request.POST or None, has_device=bool(devices))
    if request.method == "POST" and form.is_valid():
        verified_by = None
        if devices:
            token = form.cleaned_data["current_token"]
            verified_by = services.totp_code_check(user=user, token=token)
            if verified_by is None:
                form.add_error("current_token", WRONG_CODE)
        else:
            again = authenticate(
                request, username=user.get_username(), password=form.cleaned_data["password"]
            )  # a wrong password is reported to django-axes by authenticate() itself
            if again is None or again.pk != user.pk:
                form.add_error("password", "That password is not correct.")
        if not form.errors:
            try:
                added = services.totp_device_confirm_new(
                    user=user, device_id=device.pk, token=form.cleaned_data["new_token"],
                    verified_by=verified_by, replace=replace,
                )  # fmt: skip
            except services.TwoFactorRefused as exc:
                request.session.pop(NEW_DEVICE, None)
                messages.error(request, str(exc))
                return redirect("accounts:two_factor")
            if added is not None:
                request.session.pop(NEW_DEVICE, None)
                services.two_factor_code_passed(request=request, device=added)
                messages.success(
                    request,
                    "Your authenticator app was replaced."
                    if replace
                    else "Your new authenticator app is set up."
                    if devices
                    else "Two-factor sign-in is on: you will need a code at every sign-in.",
                )
                return redirect("accounts:two_factor")
            form.add_error("new_token", WRONG_CODE)
        report = "current_token" in form.errors
        if not services.two_factor_code_failed(request=request, user=user, report=report):
            return _too_many_wrong_codes(request)
    context = {
        "form": form,
        "device": device,
        "totp_secret": b32encode(device.bin_key).decode(),
        "replace": replace,
        "has_device": bool(devices),
    }
    # never_cache: the page shows a secret, and is not kept (Cache-Control: no-store, ...).
    return render(
        request, "accounts/two_factor_add.html", context, status=400 if form.errors else 200
    )


def _code_for_change(
    request: HttpRequest, *, exclude: int | None = None
) -> tuple[object | None, HttpResponse | None]:
    """The device that accepts the posted current code, or the response to send instead."""
    form = TokenForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter the 6-digit code shown in your authenticator app.")
        return None, _overview(request, status=400)
    device = services.totp_code_check(
        user=request.user, token=form.cleaned_data["token"], exclude=exclude
    )
    if device is None:
        if not services.two_factor_code_failed(request=request, user=request.user):
            return None, _too_many_wrong_codes(request)
        messages.error(request, WRONG_CODE)
        return None, _overview(request, status=400)
    return device, None


@sensitive_post_parameters("token")
@never_cache
@verified_session_required
@require_POST
def two_factor_remove_view(request: HttpRequest, device_id: int) -> HttpResponse:
    """Remove one of your apps, with a current code from one you keep."""
    user = request.user
    device = selectors.access_totp_device(user=user, device_id=device_id)
    if len(selectors.totp_devices_for_user(user=user)) < 2:
        messages.error(
            request,
            "Staff accounts must keep an authenticator app: replace this one instead."
            if selectors.user_role_requires_otp(user=user)
            else "This is your only app: turn two-factor sign-in off instead.",
        )
        return _overview(request, status=400)
    verified_by, refusal = _code_for_change(request, exclude=device.pk)
    if refusal is not None:
        return refusal
    try:
        services.totp_device_remove(user=user, device=device, verified_by=verified_by)
    except services.TwoFactorRefused as exc:
        messages.error(request, str(exc))
        return _overview(request, status=400)
    services.two_factor_code_passed(request=request, device=verified_by)
    messages.success(request, f"“{device.name}” was removed.")
    return redirect("accounts:two_factor")


@sensitive_post_parameters("token")
@never_cache
@verified_session_required
@require_POST
def two_factor_off_view(request: HttpRequest) -> HttpResponse:
    """A patient turns two-factor sign-in off, with a current code."""
    user = request.user
    if selectors.user_role_requires_otp(user=user):
        messages.error(request, "Staff accounts must keep two-factor sign-in.")
        return _overview(request, status=400)
    if not selectors.totp_devices_for_user(user=user):
        messages.info(request, "Two-factor sign-in is already off.")
        return redirect("accounts:two_factor")
    verified_by, refusal = _code_for_change(request)
    if refusal is not None:
        return refusal
    try:
        services.totp_turn_off(user=user, verified_by=verified_by)
    except services.TwoFactorRefused as exc:
        messages.error(request, str(exc))
        return _overview(request, status=400)
    services.session_device_forget(request=request)
    messages.success(request, "Two-factor sign-in is off: you sign in with your password only.")
    return redirect("accounts:two_factor")


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)  # deletes the server-side session
    messages.info(request, "You have signed out.")
    return redirect("accounts:login")


@never_cache
def home_view(request: HttpRequest) -> HttpResponse:
    """Send each user to their portal."""
    user = request.user
    if not user.is_authenticated:
        return redirect("accounts:login")
    from portal.records.selectors import patient_registrations_for_user

    if request.membership is not None:
        return redirect("provider:home")
    if patient_registrations_for_user(user=user):
        return redirect("patient:home")
    if user.is_superuser or hospital_ids_administered_for_request(request=request):
        return redirect("admin:index")
    raise PermissionDenied("Your account has no access to any portal yet.")


@require_POST
def switch_hospital_view(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    form = SwitchHospitalForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of your hospitals.")
        return redirect("accounts:home")
    hospital = tenancy_services.active_hospital_switch(
        request=request, hospital_id=form.cleaned_data["hospital"]
    )
    messages.success(request, f"You are now working at {hospital.name}.")
    return redirect("provider:home")
