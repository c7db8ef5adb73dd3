"""The Python fhirclient (PyPI) as a confidential SMART client against the live server: it
finds the OAuth endpoints in the CapabilityStatement, the patient approves on the consent
screen (driven here with requests, signed in by the portal's session), the client exchanges
the code with its secret and PKCE, reads the patient's observations, is refused problems,
and refreshes its token."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
import requests
from django.conf import settings
from fhirclient import client as fhir_client
from fhirclient.models.condition import Condition
from fhirclient.models.observation import Observation

from portal.smart.services import smart_app_register
from tests.smart.conftest import REDIRECT

pytestmark = pytest.mark.django_db(transaction=True)


class FormFields(HTMLParser):
    """The consent form's fields: hidden ones as they are, checkboxes ticked, the select's
    chosen option."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            if a.get("type") == "hidden" or (a.get("type") == "checkbox" and "checked" in a):
                self.fields.append((a["name"], a.get("value") or ""))
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a.get("value") or ""))


def test_confidential_client_launch_read_and_refresh(live_server, client, sign_in, world):
    a = world["a"]
    app = smart_app_register(name="Clinic Dashboard", redirect_uris=[REDIRECT], confidential=True)
    smart = fhir_client.FHIRClient(
        settings={
            "app_id": app.client_id,
            "app_secret": app.client_secret,
            "api_base": f"{live_server.url}/fhir/R4/",
            "redirect_uri": REDIRECT,
            "scope": "launch/patient openid fhirUser patient/Observation.rs offline_access",
        }
    )
    authorize_url = smart.authorize_url  # from the CapabilityStatement's oauth-uris
    assert authorize_url.startswith(f"{live_server.url}/oauth/authorize/?")

    sign_in(client, a["user"])
    browser = requests.Session()
    browser.cookies.set(
        settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value
    )
    page = browser.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    assert "Clinic Dashboard wants to connect" in page.text
    form = FormFields()
    form.feed(page.text)
    approved = browser.post(
        f"{live_server.url}/oauth/authorize/", data=[*form.fields, ("allow", "Authorize")],
        allow_redirects=False, timeout=10,
    )  # fmt: skip
    assert approved.status_code == 302, approved.text
    callback = approved.headers["Location"]
    assert callback.startswith(REDIRECT)

    smart.handle_callback(callback)  # the code, the client secret and the PKCE verifier
    assert smart.patient_id == str(a["patient"].pk)
    search = Observation.where(struct={"patient": smart.patient_id})
    observations = list(search.perform_resources_iter(smart.server))
    # Besides them, the search says what the app is not shown (an OperationOutcome entry).
    assert {o.id for o in observations if o.resource_type == "Observation"} == {
        str(a["lab"].pk),
        str(a["vital"].pk),
    }
    with pytest.raises(Exception):  # noqa: B017 - fhirclient raises HTTPError's subclasses
        list(
            Condition.where(struct={"patient": smart.patient_id}).perform_resources_iter(
                smart.server
            )
        )

    old_token = smart.server.auth.access_token
    assert smart.server.reauthorize() is not None  # the refresh token, rotated
    assert smart.server.auth.access_token != old_token
    again = list(search.perform_resources_iter(smart.server))
    assert len([o for o in again if o.resource_type == "Observation"]) == 2
