"""One gate (accounts.gates.entry_refusal) behind every door: portal pages, the API and the
admin give the same answer for the same session."""

from __future__ import annotations

import pytest

from portal.tenancy.models import Role
from tests import factories

LOGIN = "/accounts/login/"


def _to_login(response) -> bool:
    return response.status_code == 302 and LOGIN in response.url


def test_a_staff_session_without_its_second_factor_enters_no_door(
    client, sign_in, make_staff, hospital_a, hospital_b
):
    admin = make_staff(hospital_a, Role.HOSPITAL_ADMIN)
    factories.PatientFactory(hospital=hospital_b, user=admin)  # a patient elsewhere too
    sign_in(client, admin, verified=False)
    assert _to_login(client.get("/provider/"))
    assert _to_login(client.get("/patient/"))  # the role needs two factors on every part
    assert _to_login(client.get("/patient/proxies/"))
    assert _to_login(client.get("/admin/"))
    assert _to_login(client.get("/accounts/two-factor/"))
    assert client.get("/api/v1/patients/").status_code == 403
    assert client.get("/api/v1/me/registrations/").status_code == 403
    assert client.get("/api/v1/me/proxies/").status_code == 403
    sign_in(client, admin)  # now with it: every door opens
    assert client.get("/provider/").status_code == 200
    assert client.get("/patient/").status_code == 200
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/v1/patients/").status_code == 200
    assert client.get("/api/v1/me/registrations/").status_code == 200


def test_a_patient_without_two_factors_enters_the_patient_doors_only(
    client, sign_in, make_patient_user, hospital_a, hospital_b
):
    user, _ = make_patient_user(hospital_a)
    sign_in(client, user)
    assert client.get("/patient/").status_code == 200
    assert client.get("/patient/proxies/").status_code == 200
    assert client.get("/accounts/two-factor/").status_code == 200
    assert client.get("/api/v1/me/registrations/").status_code == 200
    assert client.get("/provider/").status_code == 403
    assert client.get("/admin/").status_code == 403
    assert client.get("/api/v1/patients/").status_code == 403


@pytest.mark.parametrize(
    "url", ["/provider/", "/patient/", "/patient/proxies/", "/admin/", "/accounts/two-factor/"]
)
def test_nobody_signed_in_is_sent_to_sign_in(client, db, url):
    assert _to_login(client.get(url))
