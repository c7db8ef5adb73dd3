import base64
import datetime as dt
import hashlib
import json
import secrets
from decimal import Decimal
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.utils import timezone

from portal.records import services as records_services
from portal.records.models import Condition
from portal.smart.services import smart_app_register
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests.provider.test_browser import browser_page  # noqa: F401 - the browser fixture

FHIR_BASE = "http://testserver/fhir/R4/"
REDIRECT = "http://app.example/callback"


def id_token_claims(id_token: str) -> dict:
    """The id_token's claims, its signature checked with the server's published key."""
    from jwcrypto import jwk, jwt
    from oauth2_provider.settings import oauth2_settings

    key = jwk.JWK.from_pem(oauth2_settings.OIDC_RSA_PRIVATE_KEY.encode())
    public = jwk.JWK(**key.export_public(as_dict=True))
    return json.loads(jwt.JWT(jwt=id_token, key=public).claims)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


@pytest.fixture
def world(make_staff, make_patient_user, hospital_a, hospital_b):
    """Two hospitals, each with a clinician and a patient account (a registration there)
    holding a lab result, a vital sign and a problem."""
    out = {}
    for key, hospital in (("a", hospital_a), ("b", hospital_b)):
        clinician = make_staff(hospital, Role.CLINICIAN)
        user, (patient,) = make_patient_user(hospital)
        when = timezone.now() - dt.timedelta(days=2)
        with unscoped():
            make = dict(actor=clinician, patient=patient)
            lab = records_services.observation_create(
                **make, code="2345-7", display="Glucose", value=Decimal("5.4"),
                unit="mmol/L", effective_at=when, category="laboratory",
            )  # fmt: skip
            vital = records_services.observation_create(
                **make, code="8867-4", display="Heart rate", value=Decimal("72"),
                unit="/min", effective_at=when,
            )  # fmt: skip
            condition = records_services.record_create(
                **make, model=Condition, code="38341003", display="Hypertension",
                onset_date=dt.date(2019, 1, 2),
            )  # fmt: skip
        out[key] = {
            "hospital": hospital, "clinician": clinician, "user": user, "patient": patient,
            "lab": lab, "vital": vital, "condition": condition,
        }  # fmt: skip
    return out


@pytest.fixture
def app(db):
    return smart_app_register(name="Sleep Tracker", redirect_uris=[REDIRECT])


@pytest.fixture
def confidential_app(db):
    return smart_app_register(
        name="Clinic Dashboard", redirect_uris=[REDIRECT], confidential=True,
        launch_url="http://app.example/launch",
    )  # fmt: skip


def authorize_params(app, scope, *, challenge, aud=FHIR_BASE, **extra):
    return {
        "response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
        "scope": scope, "state": "st4te", "aud": aud, "code_challenge": challenge,
        "code_challenge_method": "S256", **extra,
    }  # fmt: skip


def authorize(client, app, scope, *, granted=None, patient=None, allow=True, **extra):
    """Drive the consent screen; returns (code or None, verifier, last response)."""
    verifier, challenge = pkce()
    params = authorize_params(app, scope, challenge=challenge, **extra)
    page = client.get("/oauth/authorize/?" + urlencode(params))
    if page.status_code != 200:
        return None, verifier, page
    form = page.context["form"]
    data = {
        name: form[name].value() or "" for name in form.fields if form.fields[name].widget.is_hidden
    }
    data["granted"] = granted if granted is not None else form.fields["granted"].initial
    if "patient" in form.fields:
        data["patient"] = patient.pk if patient is not None else form.fields["patient"].initial
    if allow:
        data["allow"] = "Authorize"
    response = client.post("/oauth/authorize/", data)
    if response.status_code != 302:
        return None, verifier, response
    query = parse_qs(urlparse(response.url).query)
    return (query.get("code") or [None])[0], verifier, response


def exchange(client, app, code, verifier, **extra):
    data = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": app.client_id, "code_verifier": verifier, **extra,
    }  # fmt: skip
    if app.client_secret:
        data["client_secret"] = app.client_secret
    return client.post("/oauth/token/", data)
