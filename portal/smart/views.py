"""SMART App Launch pages: the consent screen (DOT's AuthorizationView through its hooks),
/.well-known/smart-configuration, the patient's connected apps, the EHR launch from a chart,
and the demo app page."""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import unquote, urlencode

from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from oauth2_provider.views import AuthorizationView, IntrospectTokenView

from portal.accounts.decorators import patient_required, staff_required
from portal.accounts.gates import Audience, Refusal, entry_refusal
from portal.records import access as records_access
from portal.records.selectors import patient_registrations_for_user
from portal.smart import selectors, services
from portal.smart.forms import ConsentForm
from portal.smart.models import SmartAuthorization, SmartCode


def fhir_base(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("fhir:root"))


def _refused(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(request, "smart/refused.html", {"message": message}, status=status)


class SmartAuthorizationView(AuthorizationView):
    """The consent screen. A patient sees the app's name and, in plain words, what it asks
    for; unticks what they do not want to give; picks whose records (if they have several
    registrations); approves or denies. Staff come here through an EHR launch (or with
    user/ scopes) and only with a session verified with two factors. `aud` must be this
    FHIR base, and PKCE must be S256."""

    template_name = "smart/authorize.html"
    form_class = ConsentForm

    def _param(self, name: str) -> str:
        source = self.request.POST if self.request.method == "POST" else self.request.GET
        return (source.get(name) or "").strip()

    def _audience(self) -> Audience:
        scopes = self._param("scope").split()
        staff = "launch" in scopes or any(s.startswith("user/") for s in scopes)
        return Audience.STAFF if staff else Audience.PATIENT

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            # The portal's one gate: staff with two factors, patients as their role needs.
            refusal = entry_refusal(request, self._audience())
            if refusal == Refusal.SIGN_IN:
                return redirect_to_login(request.get_full_path())
            if refusal is not None:
                who = "hospital staff" if self._audience() == Audience.STAFF else "patients"
                return _refused(request, f"This app asks for access only {who} can give.", 403)
            if request.method in ("GET", "POST"):
                refused = self._request_refused()
                if refused is not None:
                    return _refused(request, refused)
        return super().dispatch(request, *args, **kwargs)

    def _request_refused(self) -> str | None:
        if self._param("aud").rstrip("/") != fhir_base(self.request).rstrip("/"):
            return f"The app must name this server as its audience (aud={fhir_base(self.request)})."
        if self.request.method == "GET" and self._param("code_challenge_method") != "S256":
            return "The app must use PKCE with code_challenge_method=S256."
        launching = self._audience() == Audience.STAFF and "launch" in self._param("scope").split()
        if launching and self._launch_context(consume=False) is None:
            return "This launch has expired or was not yours: launch the app again."
        return None

    def _launch_context(self, *, consume: bool):
        app = selectors.application_by_client_id(client_id=self._param("client_id"))
        launch = self._param("launch")
        if app is None or not launch:
            return None
        return services.smart_launch_use(
            launch=launch, user=self.request.user, application=app, consume=consume
        )

    def _patients(self) -> list:
        if self._audience() == Audience.PATIENT:
            return patient_registrations_for_user(user=self.request.user)
        return []

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["requested"] = self._param("scope").split()
        kwargs["patients"] = self._patients()
        return kwargs

    def get_initial(self):
        initial = super().get_initial()
        initial.update(launch=self._param("launch"), aud=self._param("aud"))
        return initial

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        launch = None
        if self._audience() == Audience.STAFF and self._param("launch"):
            launch = self._launch_context(consume=False)
        context.update(launch_context=launch, staff=self._audience() == Audience.STAFF)
        return context

    def create_authorization_response(self, request, scopes, credentials, allow):
        # The authorization this approval recorded travels with the request to the
        # validator, which links the code it issues to it (SmartValidator).
        authorization = getattr(self, "smart_authorization", None)
        if authorization is not None:
            credentials = {**credentials, "smart_authorization_id": authorization.pk}
        return super().create_authorization_response(
            request=request, scopes=scopes, credentials=credentials, allow=allow
        )

    def form_valid(self, form):
        if not form.cleaned_data.get("allow"):
            return super().form_valid(form)
        application = selectors.application_by_client_id(client_id=form.cleaned_data["client_id"])
        if application is None:
            return _refused(self.request, "Unknown app.")
        user = self.request.user
        scopes = form.cleaned_data["scope"].split()
        with transaction.atomic():
            if self._audience() == Audience.STAFF:
                context = self._launch_context(consume=True) if "launch" in scopes else None
                if "launch" in scopes and context is None:
                    return _refused(self.request, "This launch has expired: launch it again.")
                hospital = context.hospital if context else self.request.membership.hospital
                patient = context.patient if context else None
                audience, launch = SmartAuthorization.Audience.STAFF, SmartAuthorization.Launch.EHR
                if context is None:
                    launch = SmartAuthorization.Launch.STANDALONE
            else:
                patient = next(
                    (p for p in self._patients() if p.pk == form.cleaned_data.get("patient")),
                    None,
                )
                if patient is None:
                    return _refused(self.request, "Choose one of your own records.")
                hospital = patient.hospital
                audience = SmartAuthorization.Audience.PATIENT
                launch = SmartAuthorization.Launch.STANDALONE
            self.smart_authorization = services.smart_authorization_create(
                application=application, user=user, hospital=hospital, patient=patient,
                audience=audience, launch=launch, scopes=scopes,
                two_factor=bool(user.is_verified()),
            )  # fmt: skip
            response = super().form_valid(form)
            if not SmartCode.objects.filter(authorization=self.smart_authorization).exists():
                # DOT refused the request (its error response is returned): nothing stays.
                transaction.set_rollback(True)
        return response


def _client_id_of(request: HttpRequest) -> str:
    """Which client a request that DOT authenticated came as (HTTP Basic or the body)."""
    scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return unquote(decoded.partition(":")[0])
    return request.POST.get("client_id", "")


class SmartIntrospectView(IntrospectTokenView):
    """RFC 7662 for an app's own tokens: DOT's introspection (the client authenticates),
    answering `active: false` for a token of any other app, and without the user's name."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        body = json.loads(response.content or b"{}")
        if not body.get("active"):
            return response
        if body.get("client_id") != _client_id_of(request):
            return JsonResponse({"active": False})
        body.pop("username", None)
        return JsonResponse(body)

    def get(self, request, *args, **kwargs):
        return JsonResponse(
            {"error": "invalid_request", "error_description": "POST the token."}, status=405
        )


@require_GET
def smart_configuration_view(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(selectors.smart_configuration(request=request))
    response["Access-Control-Allow-Origin"] = "*"  # public metadata, read by browser apps
    return response


@patient_required
@require_GET
def connected_apps_view(request: HttpRequest) -> HttpResponse:
    apps = selectors.connected_apps_for(user=request.user)
    return render(request, "smart/connected_apps.html", {"apps": apps})


@patient_required
@require_POST
def disconnect_view(request: HttpRequest, authorization_id: str) -> HttpResponse:
    authorization = selectors.connected_app_access(
        user=request.user, authorization_id=authorization_id
    )
    services.smart_authorization_revoke(
        authorization=authorization, actor=request.user, via="patient"
    )
    return redirect("smart:connected_apps")


@staff_required
@require_http_methods(["GET", "POST"])
def ehr_launch_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    """ "Launch app" on a chart: the apps staff may launch; launching one creates a launch
    context bound to this user, hospital and patient and sends the browser to the app."""
    opened = records_access.access_patient(request.user, patient_id)
    if request.method == "GET":
        return render(
            request,
            "smart/ehr_launch.html",
            {"patient": opened.patient, "apps": selectors.ehr_launch_apps()},
        )
    app = selectors.ehr_launch_app(app_id=request.POST.get("app"))
    launch = services.smart_launch_create(
        application=app.application, user=request.user, hospital=opened.patient.hospital,
        patient=opened.patient,
    )  # fmt: skip
    separator = "&" if "?" in app.launch_url else "?"
    query = urlencode({"iss": fhir_base(request), "launch": launch})
    return redirect(f"{app.launch_url}{separator}{query}")


@require_GET
def demo_app_view(request: HttpRequest, page: str = "launch") -> HttpResponse:
    """The vendored demo SMART app (static pages, the fhirclient browser build)."""
    template = "smart_demo/index.html" if page == "index" else "smart_demo/launch.html"
    client_id = request.GET.get("client_id", "")
    return render(request, template, {"fhir_base": fhir_base(request), "client_id": client_id})
