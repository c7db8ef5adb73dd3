"""Break-glass notices go out from a real Celery worker after commit, exactly once."""

import datetime as dt

from consent import services
from portal.records import services as record_services
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories
from tests.conftest import wait_until


def test_break_glass_mail_is_sent_by_the_worker(
    start_worker, tmp_path, make_staff, hospital_a, hospital_b
):
    outbox = tmp_path / "mail"
    outbox.mkdir()
    worker = start_worker(extra_env={"EMAIL_URL": "filemail://", "EMAIL_FILE_PATH": str(outbox)})
    make_staff(hospital_a, Role.HOSPITAL_ADMIN, email="admin@stmary.example")
    clinician = make_staff(hospital_b, Role.CLINICIAN)
    account = factories.UserFactory(email="pat@example.org")
    with unscoped():
        patient = record_services.patient_register(
            hospital=hospital_a, mrn="BG-1", given_name="Pat", family_name="Jones",
            birth_date=dt.date(1970, 2, 3), user=account,
        )  # fmt: skip
    services.break_glass_open(
        user=clinician, user_hospital=hospital_b, patient=patient,
        reason="Found unresponsive; needs history",
    )  # fmt: skip

    def mails():
        return "".join(p.read_text() for p in outbox.iterdir())

    text = wait_until(
        lambda: (m := mails()) and "admin@stmary.example" in m and "pat@example.org" in m and m,
        timeout=60, message=worker.output,
    )  # fmt: skip
    assert "Emergency access to your records" in text
    assert "unresponsive" not in text  # the clinical reason never leaves the database
