"""Issue 13, item 3: FHIR import writes only where the importer may write.

The attack: re-importing a resource whose earlier import landed in a chart that is now
restricted, or a bundle naming an existing MRN, wrote into that chart without the change
permission (a nurse who gets 404 on the chart did it, and so did hospital admins, who hold
no chart grant at all). Now the importer asks access_patient(codename="change_patient") like
every other write: such a bundle writes nothing, and its answer is the same whether the MRN
exists or not, and whether the chart is restricted or not.
"""

import copy
import datetime as dt
import json

import pytest

from ledger.models import Event
from portal.api.services import token_issue
from portal.fhir.models import ImportIdentity, import_source_token
from portal.records import services
from portal.records.models import RECORD_MODELS, Observation, Patient
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped

BASE = "/fhir/R4/"
MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
SNOMED = "http://snomed.info/sct"


def _entry(rtype: str, rid: str, body: dict) -> dict:
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": {"resourceType": rtype, "id": rid, **body},
        "request": {"method": "POST", "url": rtype},
    }


def _patient(rid: str = "pat-1", mrn: str = "SYN-1") -> dict:
    return _entry("Patient", rid, {
        "identifier": [{"type": MR, "value": mrn}],
        "name": [{"use": "official", "family": "Doe", "given": ["Jane"]}],
        "gender": "female", "birthDate": "1990-02-03",
    })  # fmt: skip


def _condition(rid: str, subject: str, code: str = "38341003") -> dict:
    return _entry("Condition", rid, {
        "code": {"coding": [{"system": SNOMED, "code": code, "display": "Hypertension"}]},
        "subject": {"reference": subject}, "onsetDateTime": "2010-01-01T00:00:00Z",
    })  # fmt: skip


def _observation(rid: str, subject: str) -> dict:
    return _entry("Observation", rid, {
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],  # noqa: E501
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},  # noqa: E501
        "subject": {"reference": subject}, "effectiveDateTime": "2020-01-02T03:04:05+00:00",
        "valueQuantity": {"value": 99, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},  # noqa: E501
    })  # fmt: skip


def _bundle(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _post(client, bundle: dict, **headers):
    return client.post(
        BASE, json.dumps(bundle), content_type="application/fhir+json", headers=headers
    )


def _state(hospital=None) -> dict:
    """Everything an import could write, counted (for one hospital, or all)."""
    with unscoped():
        rows = {m.__name__: m.objects for m in (Patient, *RECORD_MODELS)}
        if hospital is not None:
            rows = {k: v.filter(hospital=hospital) for k, v in rows.items()}
        counts = {k: v.count() for k, v in rows.items()}
        identities = ImportIdentity._base_manager.all()
        events = Event.objects.all()
        if hospital is not None:
            identities, events = (
                identities.filter(hospital=hospital),
                events.filter(hospital=hospital),
            )
        counts["ImportIdentity"] = identities.count()
        counts["Event"] = events.count()
    return counts


def _diagnostics(response) -> list[str]:
    body = json.loads(response.content)
    assert body["resourceType"] == "OperationOutcome", body
    return [issue.get("diagnostics", "") for issue in body["issue"]]


@pytest.fixture
def world(make_staff, hospital_a, hospital_b):
    clinician = make_staff(hospital_a, Role.CLINICIAN)
    with unscoped():
        open_chart = services.patient_register(
            hospital=hospital_a, mrn="A-100", given_name="Pat", family_name="Open",
            birth_date=dt.date(1970, 2, 3), actor=clinician,
        )  # fmt: skip
        vip = services.patient_register(
            hospital=hospital_a, mrn="A-900", given_name="Vip", family_name="Person",
            birth_date=dt.date(1960, 1, 1), actor=clinician,
        )  # fmt: skip
        services.patient_set_restricted(patient=vip, restricted=True, actor=clinician)
    return {
        "clinician": clinician,
        "nurse": make_staff(hospital_a, Role.NURSE),
        "admin": make_staff(hospital_a, Role.HOSPITAL_ADMIN),
        "open": open_chart,
        "vip": vip,
    }


def test_a_nurse_cannot_reimport_into_a_chart_restricted_since(client, sign_in, world):
    # The clinician imports a patient; the chart is restricted to its care team afterwards.
    sign_in(client, world["clinician"])
    first = _bundle(_patient(), _condition("cond-1", "urn:uuid:pat-1"))
    assert _post(client, first).status_code == 200
    with unscoped():
        (imported,) = Patient.objects.exclude(pk__in=[world["open"].pk, world["vip"].pk])
        services.patient_set_restricted(patient=imported, restricted=True, actor=world["admin"])
    sign_in(client, world["nurse"])
    assert client.get(f"{BASE}Patient/{imported.pk}").status_code == 404
    before = _state()
    # The same bundle plus new records: through the Patient entry imported before ...
    again = copy.deepcopy(first)
    again["entry"] += [_condition("cond-2", "urn:uuid:pat-1", "44054006"),
                       _observation("obs-1", "urn:uuid:pat-1")]  # fmt: skip
    response = _post(client, again)
    assert response.status_code == 422
    assert not any("exist" in d or "restrict" in d for d in _diagnostics(response))
    # ... and by a literal reference to the earlier import, without the Patient entry.
    alone = _bundle(_condition("cond-3", "Patient/pat-1", "44054006"))
    response = _post(client, alone)
    assert response.status_code == 422
    assert "does not resolve to a Patient" in " ".join(_diagnostics(response))
    # A resource imported before, into that chart, is not even reported back.
    response = _post(client, _bundle(_condition("cond-1", "Patient/pat-1")))
    assert response.status_code == 422
    assert _state() == before


def test_a_hospital_admin_imports_nothing(client, sign_in, world):
    sign_in(client, world["admin"])
    before = _state()
    for bundle in (
        _bundle(_patient(mrn="NEW-1"), _condition("cond-1", "urn:uuid:pat-1")),  # new chart
        _bundle(_patient(mrn="A-100"), _condition("cond-1", "urn:uuid:pat-1")),  # existing
        _bundle(_patient(mrn="A-900"), _condition("cond-1", "urn:uuid:pat-1")),  # restricted
        _bundle(_patient(mrn="NEW-2")),  # a registration alone: into a chart they could not open
    ):
        response = _post(client, bundle)
        assert response.status_code == 422, response.content
    assert _state() == before


def test_an_existing_mrn_is_not_revealed(client, sign_in, world):
    """A bundle naming the MRN of a chart the caller may not change is refused, writing
    nothing, with the very answer a refused bundle naming no existing MRN gets."""

    def attempt(user, mrn):
        sign_in(client, user)
        before = _state()
        response = _post(client, _bundle(_patient(mrn=mrn), _condition("c-1", "urn:uuid:pat-1")))
        assert _state() == before, (user, mrn)
        assert response.status_code == 422
        return response.content

    nurse, admin = world["nurse"], world["admin"]
    restricted_for_the_nurse = attempt(nurse, "A-900")
    # The hospital admin may change no chart: existing, restricted or not, or new.
    for_the_admin = {mrn: attempt(admin, mrn) for mrn in ("A-100", "A-900", "NO-SUCH-MRN")}
    assert len(set(for_the_admin.values())) == 1, for_the_admin
    assert restricted_for_the_nurse == for_the_admin["NO-SUCH-MRN"]
    assert b"MRN" not in restricted_for_the_nurse and b"exist" not in restricted_for_the_nurse
    # The nurse's own hospital charts stay theirs to import into (what a nurse may record:
    # an observation; a diagnosis is a clinician's, records.access ROLE_ACTIONS, issue 16).
    sign_in(client, nurse)
    response = _post(client, _bundle(_patient(mrn="A-100"), _observation("o-9", "urn:uuid:pat-1")))
    assert response.status_code == 200, response.content
    with unscoped():
        identity = ImportIdentity._base_manager.get(
            source_token=import_source_token(hospital_id=world["open"].hospital_id, value="o-9")
        )
        assert Observation.objects.get(pk=identity.target_id).patient_id == world["open"].pk


def test_another_hospital_changes_nothing(client, sign_in, world, make_staff, hospital_b):
    clinician_b = make_staff(hospital_b, Role.CLINICIAN)
    # Riverside imported a patient of its own (source id pat-1, MRN B-1).
    sign_in(client, clinician_b)
    own = _bundle(_patient(mrn="B-1"), _condition("cond-1", "urn:uuid:pat-1"))
    assert _post(client, own).status_code == 200
    with unscoped():
        theirs = Patient.objects.get(hospital=hospital_b)
    before_b = _state(hospital_b)
    clinician_a = world["clinician"]
    # A St Mary's token naming Riverside: refused outright.
    _, token = token_issue(user=clinician_a, name="integration", audience="staff", two_factor=True)
    auth = {"Authorization": f"Bearer {token}"}
    bundle = _bundle(_patient(mrn="B-1"), _condition("cond-2", "urn:uuid:pat-1"))
    response = _post(client, bundle, **auth, **{"X-Hospital": hospital_b.slug})
    assert response.status_code == 403
    # Riverside's source ids, MRN and row ids, posted at St Mary's: nothing of Riverside's
    # is found or changed (at most St Mary's gets a chart of its own).
    for attack in (
        _bundle(_condition("cond-3", "Patient/pat-1")),
        _bundle(_condition("cond-4", f"Patient/{theirs.pk}")),
        _bundle(_condition("cond-1", "Patient/pat-1")),
    ):
        response = _post(client, attack, **auth)
        assert response.status_code == 422
        assert "does not resolve to a Patient" in " ".join(_diagnostics(response))
    response = _post(client, bundle, **auth)
    assert response.status_code == 200
    with unscoped():
        (mine,) = Patient.objects.filter(hospital=world["open"].hospital).exclude(
            pk__in=[world["open"].pk, world["vip"].pk]
        )
    assert mine.pk != theirs.pk
    assert _state(hospital_b) == before_b
