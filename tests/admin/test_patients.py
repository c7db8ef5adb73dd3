"""Patients in the admin: PHI masked in lists, shown on one patient's page (an access event)."""

from __future__ import annotations

from ledger.models import Event


def test_names_and_mrns_are_masked_in_the_list(client, sign_in, world, auditor):
    for user in (auditor, world["admin_a"]):
        sign_in(client, user)
        html = client.get("/admin/records/patient/").content.decode()
        assert "Jeremiah" not in html and "Smithfield" not in html
        assert "AAA-11111" not in html and "1970" not in html
        assert "J*** S***" in html
        assert "••••••111" in html
    assert "Wilhelmina" not in html and "W*** B***" not in html  # admin A: not theirs at all


def test_the_change_page_shows_one_patient_and_is_an_access_event(client, sign_in, world):
    patient = world["patient_a"]
    sign_in(client, world["admin_a"])
    html = client.get(f"/admin/records/patient/{patient.pk}/change/").content.decode()
    assert "Jeremiah" in html and "Smithfield" in html and "AAA-11111" in html
    event = Event.objects.filter(kind="chart.read", actor=world["admin_a"]).get()
    assert event.patient_id == patient.pk
    assert event.attrs["via"] == "admin" and event.attrs["role"] == "hospital_admin"
    assert event.attrs["purpose"] == "HSYSADMIN"
    # The chart's hospital, and the admin membership the read was made in.
    assert event.hospital_id == event.actor_hospital_id == patient.hospital_id
    # The other hospital's patient: 404, no event, no decryption.
    response = client.get(f"/admin/records/patient/{world['patient_b'].pk}/change/")
    assert response.status_code == 404
    assert "Wilhelmina" not in response.content.decode()
    assert Event.objects.filter(kind="chart.read", actor=world["admin_a"]).count() == 1


def test_an_auditors_read_belongs_to_the_charts_hospital_and_to_no_readers_hospital(
    client, sign_in, world, auditor
):
    patient = world["patient_b"]
    sign_in(client, auditor)
    assert client.get(f"/admin/records/patient/{patient.pk}/change/").status_code == 200
    event = Event.objects.filter(kind="chart.read", actor=auditor).get()
    assert event.attrs["role"] == "auditor"
    assert (event.hospital_id, event.actor_hospital_id) == (patient.hospital_id, None)
