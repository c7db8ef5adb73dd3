"""No default grants anything: a reader handed a chart that the access check did not open
for its user refuses it.

The attack: the records selectors and the access event fell back to the whole chart when a
patient carried no access decision, so any view that fetched a patient some other way
(by id, by MRN, from another user's request) and handed it to them served the whole chart,
restricted notes of the care team aside. Here such careless views are mounted and called
over HTTP: each must answer 404, as for any chart the caller may not see.
"""

from __future__ import annotations

import logging

import pytest
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from portal.accounts.decorators import staff_required
from portal.fhir.selectors import fhir_patient_everything, fhir_records_for_patient
from portal.patient.export import patient_bundle
from portal.records import audit, selectors
from portal.records.models import Observation, Patient


def _bare(patient_id: int) -> Patient:
    """A patient fetched without the access check."""
    return Patient._base_manager.select_related("hospital").get(pk=patient_id)


def _careless(read):
    @staff_required
    def view(request: HttpRequest, patient_id: int) -> JsonResponse:
        return JsonResponse({"shown": read(request, _bare(patient_id))})

    return view


def _someone_elses(request: HttpRequest, patient_id: int) -> JsonResponse:
    """A chart opened for one user (the patient's own hospital's clinician) and served to
    whoever asks."""
    from portal.tenancy.models import Membership, Role

    opener = Membership._base_manager.filter(
        hospital_id=_bare(patient_id).hospital_id, role=Role.CLINICIAN
    ).first()
    patient = selectors.access_patient(opener.user, patient_id)
    chart = selectors.chart_for(user=request.user, patient=patient)
    return JsonResponse({"shown": len(chart.timeline)})


READS = {
    "chart": lambda r, p: len(selectors.chart_for(user=r.user, patient=p).timeline),
    "records": lambda r, p: selectors.records_for_patient(
        user=r.user, patient=p, model=Observation
    ).count(),
    "by-category": lambda r, p: len(
        selectors.records_by_category(user=r.user, patients=[p], category="vitals").records
    ),
    "can-change": lambda r, p: selectors.chart_changeable_by(user=r.user, patient=p),
    "everything": lambda r, p: len(fhir_patient_everything(user=r.user, patient=p)["entry"]),
    "search": lambda r, p: len(
        fhir_records_for_patient(user=r.user, patient=p, resource_type="Observation")
    ),
    "export": lambda r, p: len(patient_bundle(user=r.user, patients=[p])["entry"]),
    "event": lambda r, p: (
        audit.chart_read_record(
            reader=r.user,
            patient=p,
            acting_hospital_id=r.membership.hospital_id,
            role=r.membership.role,
        ).pk
    ),
}

careless_patterns = [
    *(path(f"{name}/<int:patient_id>/", _careless(read)) for name, read in READS.items()),
    path("someone-elses/<int:patient_id>/", staff_required(_someone_elses)),
]
urlpatterns = [path("careless/", include(careless_patterns)), path("", include("portal.urls"))]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("read", [*READS, "someone-elses"])
def test_a_chart_not_opened_for_its_reader_is_404(read, client, sign_in, consent_world, caplog):
    w = consent_world
    readers = (w["clinician_b"], w["clinician_a"])  # another hospital's, and its own
    if read == "someone-elses":
        readers = readers[:1]
    for reader in readers:
        sign_in(client, reader)
        with caplog.at_level(logging.ERROR, logger="portal.records.selectors"):
            response = client.get(f"/careless/{read}/{w['patient'].pk}/")
        assert response.status_code == 404, (read, reader.pk, response.content[:200])
        assert b"shown" not in response.content
        # The refusal is logged for the developers, with ids only.
        assert "not opened for its user" in caplog.text
        assert "SM-100" not in caplog.text and "Jones" not in caplog.text
        caplog.clear()


def test_readers_refuse_a_chart_opened_for_someone_else(consent_world):
    w = consent_world
    opened = selectors.access_patient(w["clinician_a"], w["patient"].pk)
    with pytest.raises(selectors.ChartNotOpened):
        selectors.records_for_patient(user=w["clinician_b"], patient=opened, model=Observation)
    # An opened chart's access copied onto another patient opens nothing either.
    other = _bare(w["other"].pk)
    other.chart_access = opened.chart_access
    with pytest.raises(selectors.ChartNotOpened):
        selectors.chart_for(user=w["clinician_a"], patient=other)
    # Opened properly, the same reader reads.
    assert selectors.records_for_patient(
        user=w["clinician_a"], patient=opened, model=Observation
    ).exists()


def test_the_patient_portal_opens_only_the_accounts_own_registrations(
    make_patient_user, hospital_a, hospital_b
):
    owner, (mine,) = make_patient_user(hospital_a)
    _stranger, (theirs,) = make_patient_user(hospital_b)
    opened = selectors.patients_opened_as_owner(user=owner, patients=[_bare(mine.pk)])
    assert selectors.chart_access_of(user=owner, patient=opened[0]).owner
    with pytest.raises(selectors.ChartNotOpened):
        selectors.patients_opened_as_owner(user=owner, patients=[_bare(theirs.pk)])
