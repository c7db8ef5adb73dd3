"""The header greets people by name (issue 16, item 4): staff by their account's name, a
patient by the name on their own registration, which stays encrypted there (the account
holds no name in clear)."""

import pytest
from django.contrib.auth import get_user_model

from tests import factories

pytestmark = pytest.mark.django_db


def _header(client, path: str) -> str:
    html = client.get(path).content.decode()
    return html.split('<header class="site-header">', 1)[1].split("</header>", 1)[0]


def test_a_patient_is_greeted_by_their_registrations_name(
    client, sign_in, make_patient_user, hospital_a, hospital_b
):
    account, _ = make_patient_user(hospital_a, given_name="Tom", family_name="Silva")
    assert account.get_full_name() == ""  # nothing of the name is copied into the account
    sign_in(client, account)
    header = _header(client, "/patient/")
    assert "Tom Silva" in header and account.username not in header


def test_staff_are_greeted_by_their_name_and_nameless_accounts_by_username(
    client, sign_in, make_staff, hospital_a, hospital_b
):
    named = make_staff(hospital_a, first_name="Ana", last_name="Costa")
    sign_in(client, named)
    assert "Ana Costa" in _header(client, "/provider/")
    nameless = make_staff(hospital_b)
    get_user_model()._default_manager.filter(pk=nameless.pk).update(first_name="", last_name="")
    client.logout()
    sign_in(client, nameless)
    assert nameless.username in _header(client, "/provider/")


def test_another_hospitals_patient_is_not_named_in_my_header(
    client, sign_in, make_patient_user, hospital_a, hospital_b
):
    make_patient_user(hospital_b, given_name="Other", family_name="Person")
    mine, _ = make_patient_user(hospital_a, given_name="Mia", family_name="Lund")
    sign_in(client, mine)
    header = _header(client, "/patient/")
    assert "Mia Lund" in header and "Other" not in header
    assert factories.PASSWORD not in header
