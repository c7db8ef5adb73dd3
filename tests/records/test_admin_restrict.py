from portal.records.models import Patient
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories


def test_hospital_admin_restricts_a_patient_of_their_hospital_only(
    client, sign_in, make_staff, hospital_a, hospital_b
):
    admin_a = make_staff(hospital_a, Role.HOSPITAL_ADMIN)
    # A name no admin page holds otherwise (a generated one such as "Le" is in page text).
    ours = factories.PatientFactory(
        hospital=hospital_a, mrn="OURS-12345", family_name="Quillfeather"
    )
    theirs = factories.PatientFactory(hospital=hospital_b, mrn="THEIRS-999")
    sign_in(client, admin_a)
    listing = client.get("/admin/records/patient/").content.decode()
    assert "•••••••345" in listing and "OURS-12345" not in listing  # masked
    assert ours.family_name not in listing
    assert "•••••••999" not in listing  # the other hospital's rows are not there at all
    response = client.post(
        "/admin/records/patient/",
        {"action": "restrict", "_selected_action": [ours.pk, theirs.pk]},
    )
    assert response.status_code == 302
    with unscoped():
        assert Patient.objects.get(pk=ours.pk).restricted is True
        assert Patient.objects.get(pk=theirs.pk).restricted is False
