"""The "API tokens" page of both portals: list, create (the token is shown once) and revoke.

Only an account signed in with two factors issues tokens: staff (and anyone else who must use
TOTP) with a verified session; patients with their session, verified if they turned TOTP on.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts.selectors import user_requires_otp
from portal.api import selectors, services


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="What is it for?")
    days = forms.IntegerField(
        min_value=1, max_value=services.MAX_DAYS, initial=services.DEFAULT_DAYS,
        label="Valid for (days)",
    )  # fmt: skip


def _two_factor(view):
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if user_requires_otp(user=user) and not user.is_verified():
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


@never_cache
@_two_factor
@require_http_methods(["GET", "POST"])
def tokens_view(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            _token, new_token = services.token_issue(
                user=request.user, name=form.cleaned_data["name"], days=form.cleaned_data["days"]
            )
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            form = TokenForm()
    response = render(
        request,
        "api/tokens.html",
        {
            "form": form,
            "new_token": new_token,
            "tokens": selectors.tokens_for_user(user=request.user),
            "is_staff_member": bool(getattr(request, "membership", None)),
        },
        status=400 if form.errors else 200,
    )
    response["Cache-Control"] = "no-store"
    return response


@_two_factor
@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.access_token(request.user, token_id)
    services.token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api_tokens:list")
