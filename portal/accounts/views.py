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
from django_otp import match_token

from portal.accounts import selectors, services
from portal.accounts.forms import LoginForm, SwitchHospitalForm, TokenForm
from portal.tenancy import services as tenancy_services
from portal.tenancy.selectors import hospital_ids_administered


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
    device = services.totp_device_for_setup(user=user) if setup else None
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token = form.cleaned_data["token"]
        if setup:
            matched = device if device.verify_token(token) else None
            if matched is not None:
                matched.confirmed = True
                matched.save(update_fields=["confirmed"])
        else:
            # django-otp throttles a device after a wrong code (1 s, 2 s, 4 s, ...).
            matched = match_token(user, token)
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
    if user.is_superuser or hospital_ids_administered(user=user):
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
