"""Issue 13, item 4: a read is recorded under the chart's hospital and names the reader's.

The attack found that an access event named only the reader's active hospital: 62
break-glass reads of one St Mary's patient were visible only to Riverside's admin, who also
saw St Mary's patient ids. Here, over HTTP, a Riverside clinician breaks glass on a St
Mary's patient, another reads the chart with the patient's consent, and a locum with
memberships at both hospitals reads it while active at Riverside: St Mary's membership opens
that chart, so (issue 16, item 3: "the same clinician appears under the wrong hospital") the
locum's read is St Mary's staff's, recorded and shown under St Mary's. Then:
- St Mary's admin sees every one of those reads in the admin (list and CSV), with the
  patient, and fetches each one's receipt, which verifies and names both hospitals;
- Riverside's admin sees their staff's reads, which hospital's chart each was, and nothing
  else of St Mary's: no patient or record id (list, CSV, the event's page, the patient
  filter, the search), no receipt, and none of St Mary's own staff's reads;
- a third hospital's admin sees none of it;
- the patient's "Who accessed my records" names each reader and the hospital they read from;
- FHIR AuditEvent names the reader's hospital as the source and the chart's as custodian.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal

import pytest
from django.utils.html import escape

from consent import services as consent_services
from consent.models import Consent
from ledger import verifier
from ledger.anchoring import ledger_anchor_pending
from ledger.models import ACCESS_KINDS, Event
from portal.records import services as records_services
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories

ADMIN_LIST = "/admin/ledger/accessevent/"
ADMIN_CSV = ADMIN_LIST + "export.csv"
MARY, RIVERSIDE = "St Mary's Hospital", "Riverside General"
MARY_HTML = escape(MARY)  # as the pages write it


@pytest.fixture
def world(make_staff, hospital_a, hospital_b):
    hospital_c = factories.HospitalFactory(slug="northgate", name="Northgate Clinic")
    people = {
        "mary_doc": make_staff(hospital_a, Role.CLINICIAN, username="ann-shaw",
                               first_name="Ann", last_name="Shaw"),
        "glass_doc": make_staff(hospital_b, Role.CLINICIAN, username="eve-glass",
                                first_name="Eve", last_name="Glass"),
        "consent_doc": make_staff(hospital_b, Role.CLINICIAN, username="rui-costa",
                                  first_name="Rui", last_name="Costa"),
        "locum": make_staff(hospital_a, Role.CLINICIAN, username="lou-locum",
                            first_name="Lou", last_name="Locum"),
        "admin_a": make_staff(hospital_a, Role.HOSPITAL_ADMIN, username="admin-mary"),
        "admin_b": make_staff(hospital_b, Role.HOSPITAL_ADMIN, username="admin-river"),
        "admin_c": make_staff(hospital_c, Role.HOSPITAL_ADMIN, username="admin-north"),
    }  # fmt: skip
    factories.MembershipFactory(user=people["locum"], hospital=hospital_b, role=Role.CLINICIAN)
    account = factories.UserFactory(username="pat-jones")
    with unscoped():
        patient = records_services.patient_register(
            hospital=hospital_a, mrn="SM-4711", given_name="Pat", family_name="Jonesworth",
            birth_date=dt.date(1970, 2, 3), user=account, actor=people["mary_doc"],
        )  # fmt: skip
        vital = records_services.observation_create(
            actor=people["mary_doc"], patient=patient, code="8867-4", display="Heart rate",
            value=Decimal(71), unit="/min", effective_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        )  # fmt: skip
        consent_services.consent_grant(
            patient=patient, actor=account, grantee_kind=Consent.GranteeKind.PRACTITIONER,
            grantee_user=people["consent_doc"],
        )  # fmt: skip
    return {
        **people, "a": hospital_a, "b": hospital_b, "c": hospital_c, "account": account,
        "patient": patient, "vital": vital,
    }  # fmt: skip


def _new_reads(since: int) -> list[Event]:
    return list(Event.objects.filter(id__gt=since, kind__in=ACCESS_KINDS).order_by("id"))


def _last_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _rows(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def _patient_cells(html: str) -> list[str]:
    return re.findall(r'<td class="field-patient">(.*?)</td>', html)


@pytest.fixture
def reads(client, sign_in, world):
    """The three kinds of cross-hospital read, made over HTTP; and one St Mary's own read."""
    patient, a = world["patient"], world["a"]
    chart = f"/provider/patients/{patient.pk}/"
    reads: dict[str, list[Event]] = {}

    since = _last_id()
    sign_in(client, world["glass_doc"])
    response = client.post("/provider/break-glass/", {
        "hospital": a.pk, "mrn": "SM-4711", "birth_date": "1970-02-03",
        "reason": "Unconscious on arrival, allergies unknown",
    })  # fmt: skip
    assert response.status_code == 302 and response.url == chart
    assert client.get(chart).status_code == 200
    reads["breakglass"] = _new_reads(since)

    since = _last_id()
    sign_in(client, world["consent_doc"])
    assert client.get(chart).status_code == 200
    record = f"/provider/records/observation/{world['vital'].pk}/"
    assert client.get(record).status_code == 200
    reads["consent"] = _new_reads(since)

    since = _last_id()
    sign_in(client, world["locum"])
    response = client.post("/accounts/hospital/", {"hospital": world["b"].pk})
    assert response.status_code == 302
    assert client.get(chart).status_code == 200
    reads["locum"] = _new_reads(since)

    since = _last_id()
    sign_in(client, world["mary_doc"])
    assert client.get(chart).status_code == 200
    reads["own"] = _new_reads(since)
    client.logout()

    assert [e.kind for e in reads["breakglass"]] == ["breakglass.opened", "chart.read"]
    assert [e.kind for e in reads["consent"]] == ["chart.read", "record.read"]
    assert [e.kind for e in reads["locum"]] == ["chart.read"]
    assert [e.attrs["via"] for e in reads["breakglass"][1:] + reads["consent"]] == [
        "breakglass", "consent", "consent",
    ]  # fmt: skip
    return reads


def _cross(reads) -> list[Event]:
    """The reads made from Riverside (the locum's is St Mary's own: see the docstring)."""
    return reads["breakglass"] + reads["consent"]


def test_every_read_names_the_charts_hospital_and_the_readers(world, reads):
    for event in _cross(reads):
        assert event.hospital_id == world["a"].pk, event.kind
        assert event.actor_hospital_id == world["b"].pk, event.kind
        leaf = json.loads(bytes(event.leaf))
        assert (leaf["hospital"], leaf["actor_hospital"]) == (world["a"].pk, world["b"].pk)
    (own,) = reads["own"]
    assert (own.hospital_id, own.actor_hospital_id) == (world["a"].pk, world["a"].pk)
    # The locum chose Riverside in the header, but St Mary's membership opened the chart.
    (locum,) = reads["locum"]
    assert (locum.hospital_id, locum.actor_hospital_id) == (world["a"].pk, world["a"].pk)
    assert locum.attrs["role"] == Role.CLINICIAN


def test_the_charts_hospital_admin_sees_every_read_and_its_receipt(client, sign_in, world, reads):
    patient = world["patient"]
    wanted = {e.pk for e in _cross(reads) + reads["own"] + reads["locum"]}
    sign_in(client, world["admin_a"])

    response = client.get(ADMIN_LIST)
    assert response.status_code == 200
    shown = {e.pk for e in response.context["cl"].result_list}
    assert wanted <= shown
    # Each row links to the patient's admin page (issue 16: events link to their patient).
    link = f'<a href="/admin/records/patient/{patient.pk}/change/">Patient {patient.pk}</a>'
    assert _patient_cells(response.content.decode()).count(link) == len(wanted)
    by_patient = client.get(ADMIN_LIST, {"patient": patient.pk})
    assert wanted <= {e.pk for e in by_patient.context["cl"].result_list}
    # Each from Riverside: the reader's hospital filter finds them.
    from_riverside = client.get(ADMIN_LIST, {"actor_hospital__id__exact": world["b"].pk})
    assert {e.pk for e in _cross(reads)} == {e.pk for e in from_riverside.context["cl"].result_list}

    rows = {r["event_id"]: r for r in _rows(client.get(ADMIN_CSV))}
    for event in _cross(reads):
        row = rows[str(event.event_id)]
        assert row["patient_id"] == str(patient.pk)
        assert (row["hospital"], row["actor_hospital"]) == (MARY, RIVERSIDE)
    assert rows[str(reads["consent"][1].event_id)]["subject_id"] == str(world["vital"].row_uuid)

    ledger_anchor_pending()
    key = verifier.load_verifier_key(client.get("/ledger/key").content.decode())
    for event in _cross(reads):
        response = client.get(f"/ledger/events/{event.event_id}/receipt")
        assert response.status_code == 200, event.kind
        verified = verifier.verify_receipt(response.json(), key)
        leaf = json.loads(verified.leaf)
        assert leaf["event"] == str(event.event_id)
        assert (leaf["hospital"], leaf["actor_hospital"]) == (world["a"].pk, world["b"].pk)


def test_the_readers_hospital_admin_sees_their_staffs_reads_and_nothing_else_of_st_marys(
    client, sign_in, world, reads
):
    patient, vital = world["patient"], world["vital"]
    secrets = [str(patient.row_uuid), str(vital.row_uuid), "SM-4711", "Jonesworth"]
    cross = {e.pk for e in _cross(reads)}
    sign_in(client, world["admin_b"])

    response = client.get(ADMIN_LIST)
    html = response.content.decode()
    shown = {e.pk for e in response.context["cl"].result_list}
    assert cross <= shown
    assert reads["own"][0].pk not in shown  # St Mary's own staff's read is St Mary's
    assert reads["locum"][0].pk not in shown  # so is the locum's, made as St Mary's staff
    cells = _patient_cells(html)
    assert len(cells) == len(cross) and str(patient.pk) not in cells
    assert set(cells) == {"another hospital&#x27;s patient"}
    assert MARY_HTML in html  # the row says whose chart it was
    for secret in [*secrets, "ann-shaw"]:  # nor St Mary's staff among the actor choices
        assert secret not in html
    # Neither the patient filter nor the search finds another hospital's patient or record.
    assert not client.get(ADMIN_LIST, {"patient": patient.pk}).context["cl"].result_list
    for term in (str(patient.row_uuid), str(vital.row_uuid)):
        assert not client.get(ADMIN_LIST, {"q": term}).context["cl"].result_list
    by_event = client.get(ADMIN_LIST, {"q": str(reads["consent"][0].event_id)})
    assert [e.pk for e in by_event.context["cl"].result_list] == [reads["consent"][0].pk]

    rows = _rows(client.get(ADMIN_CSV))
    assert {r["event_id"] for r in rows} == {str(e.event_id) for e in _cross(reads)}
    for row in rows:
        assert (row["hospital"], row["actor_hospital"]) == (MARY, RIVERSIDE)
        assert row["patient_id"] == row["subject_id"] == row["subject_type"] == "withheld"
        assert row["actor_username"] in {"eve-glass", "rui-costa"}
    body = "\n".join(",".join(r.values()) for r in rows)
    for secret in secrets:
        assert secret not in body
    selected = client.post(ADMIN_LIST, {"action": "export_csv", "_selected_action": sorted(cross)})
    assert {r["patient_id"] for r in _rows(selected)} == {"withheld"}

    for event in _cross(reads):
        page = client.get(f"{ADMIN_LIST}{event.pk}/change/")
        assert page.status_code == 200
        text = page.content.decode()
        assert RIVERSIDE in text and MARY_HTML in text
        for secret in [*secrets, event.digest]:
            assert secret not in text
        receipt = client.get(f"/ledger/events/{event.event_id}/receipt")
        assert receipt.status_code == 404  # its leaf names St Mary's patient


def test_a_third_hospitals_admin_sees_none_of_it(client, sign_in, world, reads):
    sign_in(client, world["admin_c"])
    response = client.get(ADMIN_LIST)
    assert not response.context["cl"].result_list
    html = response.content.decode()
    assert MARY_HTML not in html and RIVERSIDE not in html  # no filter choice names them
    assert _rows(client.get(ADMIN_CSV)) == []
    ledger_anchor_pending()
    for event in _cross(reads):
        assert client.get(f"{ADMIN_LIST}{event.pk}/change/").status_code == 404
        assert client.get(f"/ledger/events/{event.event_id}/receipt").status_code == 404


def test_the_patient_sees_who_read_and_from_which_hospital(client, sign_in, world, reads):
    sign_in(client, world["account"])
    response = client.get("/patient/access/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Your records at" in body
    rows = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", tr)]
        for tr in re.findall(r"<tr[^>]*>\s*<td>.*?</tr>", body, flags=re.S)
    ]
    # Cells: when, who (name and role: issue 16), from, records at, what, purpose, proof.
    seen = {(r[1], r[2], r[3], r[4]) for r in rows}
    mary = MARY_HTML
    assert {
        # The break-glass event records no role: the name alone.
        ("Eve Glass", RIVERSIDE, mary, "Used emergency access"),
        ("Eve Glass, Clinician", RIVERSIDE, mary, "Opened your chart"),
        ("Rui Costa, Clinician", RIVERSIDE, mary, "Opened your chart"),
        ("Rui Costa, Clinician", RIVERSIDE, mary, "Opened a record (measurement)"),
        ("Lou Locum, Clinician", mary, mary, "Opened your chart"),
        ("Ann Shaw, Clinician", mary, mary, "Opened your chart"),
    } <= seen


def test_fhir_audit_event_names_the_readers_hospital_and_the_charts(client, sign_in, world, reads):
    read = reads["breakglass"][1]
    url = f"/fhir/R4/AuditEvent/{read.event_id}"
    mary = {"reference": "Organization/st-mary", "display": MARY}
    riverside = {"reference": "Organization/riverside", "display": RIVERSIDE}
    # The reader (active at Riverside) and the chart's hospital admin (at St Mary's).
    for user in (world["glass_doc"], world["admin_a"]):
        sign_in(client, user)
        response = client.get(url)
        assert response.status_code == 200, user.username
        resource = response.json()
        assert resource["source"] == {"site": RIVERSIDE, "observer": riverside}
        reader, custodian = resource["agent"]
        assert reader["who"]["identifier"]["value"] == str(world["glass_doc"].pk)
        assert reader["requestor"] is True
        assert custodian["type"]["coding"][0]["code"] == "CST"
        assert custodian["who"] == mary and custodian["requestor"] is False
        assert {"what": {"reference": f"Patient/{world['patient'].pk}"}} in resource["entity"]
    # The reader lists their reads of the chart they opened (all of them under St Mary's).
    sign_in(client, world["glass_doc"])
    found = client.get("/fhir/R4/AuditEvent", {"patient": world["patient"].pk}).json()
    mine = {e["resource"]["id"]: e["resource"] for e in found["entry"]}
    assert str(read.event_id) in mine
    assert {r["source"]["site"] for r in mine.values()} == {RIVERSIDE}
    assert {r["agent"][1]["who"]["display"] for r in mine.values()} == {MARY}
    # Riverside's admin: the AuditEvent names St Mary's patient, so it is not theirs to read.
    sign_in(client, world["admin_b"])
    assert client.get(url).status_code == 404


def test_receipts_of_reads_from_before_keep_verifying(client, sign_in, world):
    """An event whose leaf has no "actor_hospital" (as every leaf before this change) still
    anchors and verifies, and the patient's log names the hospital it was recorded under."""
    from ledger.events import event_record

    patient = world["patient"]
    from django.db import transaction

    with transaction.atomic():
        old = event_record(
            kind="chart.read", hospital=world["b"], subject=patient, actor=world["glass_doc"],
            patient=patient, attrs={"purpose": "TREAT", "break_glass": False, "via": "consent"},
        )  # fmt: skip
    assert "actor_hospital" not in json.loads(bytes(old.leaf))
    ledger_anchor_pending()
    sign_in(client, world["account"])
    receipt = client.get(f"/ledger/events/{old.event_id}/receipt")
    assert receipt.status_code == 200
    key = verifier.load_verifier_key(client.get("/ledger/key").content.decode())
    leaf = verifier.verify_receipt(receipt.json(), key).leaf
    assert leaf == bytes(old.leaf)
    assert base64.b64decode(receipt.json()["entry"]["leaf"]) == leaf
    body = client.get("/patient/access/").content.decode()
    assert "Eve Glass" in body and RIVERSIDE in body
