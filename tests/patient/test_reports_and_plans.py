"""Issue 17: the patient's records show test reports (name, results' values, text) and care
plans (activities) under categories of their own; a proxy whose grant does not share them
is told so; another patient's are never shown."""

import pytest

from consent import services as consent_services
from portal.tenancy.scoping import unscoped
from tests.partial_chart import partial_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def w(consent_world, make_staff):
    return partial_world(consent_world, make_staff)


def test_the_owner_sees_reports_and_plans_in_words(
    client, sign_in, w, django_assert_max_num_queries
):
    sign_in(client, w["account"])
    with django_assert_max_num_queries(30):
        page = client.get("/patient/records/?category=reports").content.decode()
    assert "Test reports and imaging" in page
    assert "Lipid panel" in page and "Lipids within range." in page
    assert "Hemoglobin A1c <strong>6.1 %</strong>" in page
    plans = client.get("/patient/records/?category=careplans").content.decode()
    assert "Diabetes self management plan" in plans and "Diabetic diet" in plans
    printed = client.get("/patient/export/")
    assert printed.status_code == 200
    assert "Lipid panel" in printed.content.decode()


def test_another_patient_sees_none_of_them(client, sign_in, w):
    sign_in(client, w["other_account"])
    page = client.get("/patient/records/?category=reports").content.decode()
    assert "Lipid panel" not in page and "Nothing in this category" in page


def test_a_proxy_without_the_categories_is_told_they_are_not_shared(client, sign_in, w):
    with unscoped():
        invitation = consent_services.proxy_invite(
            grantor=w["account"], proxy_username=w["other_account"].username,
            relationship="family", scope_all=False, categories=["vitals"],
        )  # fmt: skip
        grant = consent_services.proxy_accept(invitation=invitation, actor=w["other_account"])
    sign_in(client, w["other_account"])
    url = f"/patient/proxies/{grant.row_uuid}/records/"
    page = client.get(f"{url}?category=vitals").content.decode()
    assert "Test reports and imaging" in page  # named among what is not shared
    reports = client.get(f"{url}?category=reports").content.decode()
    assert "Not shared with you." in reports and "Lipid panel" not in reports
    plans = client.get(f"{url}?category=careplans").content.decode()
    assert "Not shared with you." in plans and "Diabetic diet" not in plans
