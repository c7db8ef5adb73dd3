"""Every admin page for an auditor and for the hospital admin of each of two hospitals:
foreign rows invisible, foreign change URLs 404, filter choices of their own hospital."""

from __future__ import annotations

import pytest

from consent.models import AccessRequest, Consent
from ledger.models import AccessEvent
from portal.records.models import Patient, PatientGroupObjectPermission
from portal.tenancy.models import Department, Membership
from portal.tenancy.scoping import unscoped
from portal.tenancy.services import department_ensure
from tests import factories

SCOPED = [
    "tenancy/hospital",
    "tenancy/membership",
    "tenancy/department",
    "auth/user",
    "records/patient",
    "records/patientuserobjectpermission",
    "records/patientgroupobjectpermission",
    "records/clinicalnoteuserobjectpermission",
    "consent/consent",
    "consent/accessrequest",
    "consent/breakglass",
    "ledger/accessevent",
]
AUDITOR_ONLY = [
    "ledger/event",
    "ledger/entry",
    "ledger/checkpoint",
    "ledger/verificationrun",
    "consent/proxygrant",
]


def _rows(world):
    """(changelist, pk of hospital A's row, pk of hospital B's row) for each scoped model."""
    a, b = world["a"], world["b"]
    dep_a = department_ensure(hospital=a, slug="cardio", name="Cardiology")
    dep_b = department_ensure(hospital=b, slug="ortho", name="Orthopaedics")
    with unscoped():
        m_a = Membership.objects.get(user=world["clinician_a"], hospital=a)
        m_b = Membership.objects.get(user=world["clinician_b"], hospital=b)
        ev_a = AccessEvent.objects.filter(hospital=a).first()
        ev_b = AccessEvent.objects.filter(hospital=b).first()
        perm_a = PatientGroupObjectPermission.objects.filter(content_object__hospital=a).first()
        perm_b = PatientGroupObjectPermission.objects.filter(content_object__hospital=b).first()
    with unscoped():
        patient_b2 = factories.PatientFactory(hospital=b, user=factories.UserFactory())
        from consent.services import consent_grant

        consent_b = consent_grant(
            patient=patient_b2, actor=patient_b2.user, grantee_kind=Consent.GranteeKind.HOSPITAL,
            grantee_hospital=a,
        )  # fmt: skip
    return {
        "tenancy/hospital": (a.pk, b.pk),
        "tenancy/membership": (m_a.pk, m_b.pk),
        "tenancy/department": (dep_a.pk, dep_b.pk),
        "auth/user": (world["clinician_a"].pk, world["clinician_b"].pk),
        "records/patient": (world["patient_a"].pk, world["patient_b"].pk),
        "records/patientgroupobjectpermission": (perm_a.pk, perm_b.pk),
        "consent/consent": (world["consent"].pk, consent_b.pk),
        "consent/breakglass": (None, world["glass_b"].pk),
        "ledger/accessevent": (ev_a.pk, ev_b.pk),
    }


@pytest.mark.parametrize("side", ["a", "b"])
def test_hospital_admin_sees_only_their_hospital_everywhere(client, sign_in, world, side):
    rows = _rows(world)
    other = "b" if side == "a" else "a"
    sign_in(client, world[f"admin_{side}"])
    index = client.get("/admin/")
    assert index.status_code == 200
    assert b"Ledger health" not in index.content
    for model in SCOPED:
        page = client.get(f"/admin/{model}/")
        assert page.status_code == 200, model
        html = page.content.decode()
        if model != "consent/consent":  # a consent of ours may name their hospital as grantee
            assert world[other].name.replace("'", "&#x27;") not in html, model
    for model, pks in rows.items():
        ours, theirs = pks if side == "a" else pks[::-1]
        html = client.get(f"/admin/{model}/").content.decode()
        if ours is not None:
            assert f"/admin/{model}/{ours}/change/" in html, model
        if theirs is not None:
            assert f"/admin/{model}/{theirs}/change/" not in html, model
        if ours is not None:
            assert client.get(f"/admin/{model}/{ours}/change/").status_code == 200, model
        if theirs is not None:
            assert client.get(f"/admin/{model}/{theirs}/change/").status_code == 404, model
    for model in AUDITOR_ONLY:
        assert client.get(f"/admin/{model}/").status_code == 403, model
    assert client.get("/admin/ledger/health/").status_code == 404
    assert client.post("/admin/ledger/health/verify/").status_code == 404
    assert client.get("/admin/tenancy/membership/999999/change/").status_code == 404


def test_auditor_sees_every_hospital(client, sign_in, world, auditor):
    rows = _rows(world)
    sign_in(client, auditor)
    index = client.get("/admin/")
    assert b"Ledger health" in index.content
    for model in SCOPED + AUDITOR_ONLY:
        page = client.get(f"/admin/{model}/")
        assert page.status_code == 200, model
    for model in ["tenancy/membership", "consent/consent", "ledger/accessevent"]:
        html = client.get(f"/admin/{model}/").content.decode()
        assert "St Mary" in html and "Riverside" in html, model
    for model, pks in rows.items():
        for pk in pks:
            if pk is not None:
                assert client.get(f"/admin/{model}/{pk}/change/").status_code == 200, model


def test_filter_choices_list_only_their_hospital(client, sign_in, world, auditor):
    sign_in(client, auditor)
    for model in ["tenancy/membership", "ledger/accessevent"]:
        html = client.get(f"/admin/{model}/").content.decode()
        for h in ("a", "b"):
            assert f"hospital__id__exact={world[h].pk}" in html, model
    sign_in(client, world["admin_a"])
    for model in ["tenancy/membership", "ledger/accessevent", "consent/consent"]:
        html = client.get(f"/admin/{model}/").content.decode()
        assert f"hospital__id__exact={world['b'].pk}" not in html, model
    # Opening a patient's page in the admin is itself an access event (by the admin).
    assert client.get(f"/admin/records/patient/{world['patient_a'].pk}/change/").status_code == 200
    html = client.get("/admin/ledger/accessevent/").content.decode()
    assert f"actor__id__exact={world['clinician_a'].pk}" in html
    assert f"actor__id__exact={world['admin_a'].pk}" in html
    assert f"actor__id__exact={world['clinician_b'].pk}" not in html
    # A foreign hospital typed into the URL shows nothing of theirs.
    page = client.get(f"/admin/ledger/accessevent/?hospital__id__exact={world['b'].pk}")
    assert page.status_code == 200
    assert {e.hospital_id for e in page.context["cl"].result_list} <= {world["a"].pk}


def test_break_glass_reason_only_on_the_detail_page(client, sign_in, world):
    sign_in(client, world["admin_b"])
    listing = client.get("/admin/consent/breakglass/").content.decode()
    assert "break-glass" in listing
    assert "Unconscious" not in listing
    page = client.get(f"/admin/consent/breakglass/{world['glass_b'].pk}/change/")
    assert "Unconscious in the emergency department" in page.content.decode()
    assert b"breakglass.opened" in page.content  # its history


def test_consent_page_shows_its_ledger_history(client, sign_in, world, auditor):
    from consent.services import consent_revoke

    with unscoped():
        consent_revoke(consent=world["consent"], actor=world["account_a"])
    sign_in(client, world["admin_a"])
    html = client.get(f"/admin/consent/consent/{world['consent'].pk}/change/").content.decode()
    assert html.index("consent.granted") < html.index("consent.revoked")


def test_nothing_consent_or_ledger_is_writable(client, sign_in, world, auditor):
    sign_in(client, auditor)
    for model in ["consent/consent", "consent/breakglass", "ledger/accessevent",
                  "ledger/entry", "records/patientgroupobjectpermission", "auth/user"]:  # fmt: skip
        assert client.get(f"/admin/{model}/add/").status_code == 403, model
    consent = world["consent"]
    response = client.post(f"/admin/consent/consent/{consent.pk}/change/", {"status": "revoked"})
    assert response.status_code == 403
    with unscoped():
        assert Consent.objects.get(pk=consent.pk).status == Consent.Status.ACTIVE
    assert AccessRequest.objects.count() == 0
    assert Department.objects.count() == 0
    assert Patient._base_manager.count() == 2
