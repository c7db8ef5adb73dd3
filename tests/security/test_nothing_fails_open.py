"""No default grants anything: a reader handed a chart that the access check did not open
for its user refuses it.

The attack: the records readers and the access event fell back to the whole chart when a
patient carried no access decision, so any view that fetched a patient some other way
(by id, by MRN, from another user's request) and handed it to them served the whole chart,
restricted notes of the care team aside. Here such careless views are mounted and called
over HTTP: each must answer 404, as for any chart the caller may not see.
"""

from __future__ import annotations

import logging

import pytest
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import include, path

from portal.accounts.decorators import staff_required
from portal.fhir.selectors import fhir_patient_everything, fhir_records_for_patient
from portal.patient.export import patient_bundle
from portal.records import access, audit
from portal.records.chart import chart_for, records_by_category
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
    whoever asks: the read it records refuses a chart not opened for its reader."""
    from portal.tenancy.models import Membership, Role

    opener = Membership._base_manager.filter(
        hospital_id=_bare(patient_id).hospital_id, role=Role.CLINICIAN
    ).first()
    opened = access.access_patient(opener.user, patient_id)
    audit.chart_read_record(reader=request.user, chart=opened, membership=request.membership)
    return JsonResponse({"shown": len(chart_for(chart=opened).timeline)})


READS = {
    "chart": lambda r, p: len(chart_for(chart=p).timeline),
    "records": lambda r, p: access.chart_records(chart=p, model=Observation).count(),
    "by-category": lambda r, p: len(records_by_category(charts=[p], category="vitals").records),
    "can-change": lambda r, p: access.chart_required(p).can_change,
    "everything": lambda r, p: len(fhir_patient_everything(chart=p)["entry"]),
    "search": lambda r, p: len(fhir_records_for_patient(chart=p, resource_type="Observation")),
    "export": lambda r, p: len(patient_bundle(charts=[p])["entry"]),
    "event": lambda r, p: (
        audit.chart_read_record(reader=r.user, chart=p, membership=r.membership).pk
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
        with caplog.at_level(logging.ERROR, logger="portal.records.access"):
            response = client.get(f"/careless/{read}/{w['patient'].pk}/")
        assert response.status_code == 404, (read, reader.pk, response.content[:200])
        assert b"shown" not in response.content
        # The refusal is logged for the developers, with ids only.
        assert "not opened for its user" in caplog.text
        assert "SM-100" not in caplog.text and "Jones" not in caplog.text
        caplog.clear()


def test_readers_refuse_what_the_access_module_did_not_open(consent_world):
    w = consent_world
    opened = access.access_patient(w["clinician_a"], w["patient"].pk)
    # A look-alike carrying an opened chart's access, on another patient, opens nothing.
    fake = type("Fake", (), {"patient": _bare(w["other"].pk), "categories": None})()
    with pytest.raises(access.ChartNotOpened):
        access.chart_records(chart=fake, model=Observation)
    with pytest.raises(access.ChartNotOpened):
        chart_for(chart=_bare(w["other"].pk))
    # The opened chart is frozen: its patient or its access cannot be swapped.
    with pytest.raises(AttributeError):
        opened.patient = _bare(w["other"].pk)
    with pytest.raises(ValueError):
        access.chart_reopened(opened, categories=None)
    # Opened properly, the reader reads.
    assert access.chart_records(chart=opened, model=Observation).exists()


def test_the_patient_portal_opens_only_the_accounts_own_registrations(
    make_patient_user, hospital_a, hospital_b
):
    owner, (mine,) = make_patient_user(hospital_a)
    _stranger, (theirs,) = make_patient_user(hospital_b)
    (opened,) = access.owner_charts(user=owner, patients=[_bare(mine.pk)])
    assert opened.owner
    with pytest.raises(Http404):
        access.owner_charts(user=owner, patients=[_bare(theirs.pk)])
