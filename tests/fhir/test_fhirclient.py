"""A real FHIR client (fhirclient, from PyPI) reads a patient and its observations through
/fhir/R4/ from a live server, authenticated by a staff session cookie."""

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from fhirclient import client as fhir_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

from portal.records import services
from portal.tenancy.scoping import unscoped


def test_fhirclient_reads_a_patient_and_its_observations(live_server, client, sign_in, chart):
    a = chart["a"]
    with unscoped():
        services.observation_create(
            actor=a["clinician"], patient=a["patient"], code="8310-5", display="Body temperature",
            value=Decimal("37.2"), unit="Cel", effective_at=timezone.now() - dt.timedelta(hours=1),
        )  # fmt: skip
    sign_in(client, a["clinician"])
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value

    smart = fhir_client.FHIRClient(
        settings={"app_id": "portal-test", "api_base": f"{live_server.url}/fhir/R4/"}
    )
    smart.server.session.cookies.set(settings.SESSION_COOKIE_NAME, cookie)

    patient = Patient.read(str(a["patient"].pk), smart.server)
    assert patient.birthDate.isostring == "1970-12-10"
    assert patient.name[0].family == "LovelaceA"
    assert patient.identifier[0].value == "A-100"

    search = Observation.where(struct={"patient": str(a["patient"].pk)})
    observations = list(search.perform_resources_iter(smart.server))
    assert sorted((o.code.coding[0].code, o.valueQuantity.value) for o in observations) == [
        ("8310-5", 37.2),
        ("8867-4", 72.5),
    ]
    heart_rate = Observation.where(struct={"patient": str(a["patient"].pk), "code": "8867-4"})
    (only,) = list(heart_rate.perform_resources_iter(smart.server))
    assert only.valueQuantity.unit == "/min"
