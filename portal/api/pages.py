"""The "API tokens" page of both portals: list, create (the token is shown once) and revoke.

Only an account signed in with two factors issues tokens: staff (and anyone else who must use
TOTP) with a verified session; patients with their session, verified if they turned TOTP on.
A token acts as staff or as a patient, fixed when it is made: a member of a hospital who is
also a patient chooses, everyone else gets the one that fits them.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts.decorators import verified_session_required
from portal.api import selectors, services
from portal.api.models import TokenAudience

AUDIENCE_CHOICES = {
    TokenAudience.STAFF: "As hospital staff: patients and charts at your hospitals (REST API "
    "and FHIR)",
    TokenAudience.PATIENT: "As a patient: your own records, consents and access requests",
}


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="What is it for?")
    days = forms.IntegerField(
        min_value=1, max_value=services.MAX_DAYS, initial=services.DEFAULT_DAYS,
        label="Valid for (days)",
    )  # fmt: skip
    audience = forms.ChoiceField(label="The token acts", widget=forms.RadioSelect)

    def __init__(self, *args, audiences: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if len(audiences) > 1:
            self.fields["audience"].choices = [(a, AUDIENCE_CHOICES[a]) for a in audiences]
        else:  # nothing to choose: the page says which
            del self.fields["audience"]
        self.audiences = audiences

    def chosen_audience(self) -> str:
        return self.cleaned_data.get("audience") or self.audiences[0]


@never_cache
@verified_session_required
@require_http_methods(["GET", "POST"])
def tokens_view(request: HttpRequest) -> HttpResponse:
    audiences = selectors.token_audiences_for_user(user=request.user)
    form = TokenForm(request.POST or None, audiences=audiences)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            _token, new_token = services.token_issue(
                user=request.user, name=form.cleaned_data["name"],
                days=form.cleaned_data["days"], audience=form.chosen_audience(),
                two_factor=request.user.is_verified(), actor=request.user,
            )  # fmt: skip
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            form = TokenForm(audiences=audiences)
    response = render(
        request,
        "api/tokens.html",
        {
            "form": form,
            "new_token": new_token,
            "tokens": selectors.tokens_for_user(user=request.user),
            "is_staff_member": bool(getattr(request, "membership", None)),
            "only_audience": audiences[0] if len(audiences) == 1 else None,
        },
        status=400 if form.errors else 200,
    )
    response["Cache-Control"] = "no-store"
    return response


@verified_session_required
@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.access_token(request.user, token_id)
    services.token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api_tokens:list")
