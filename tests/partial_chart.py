"""A chart shared in part (issue 16, item 1): consent_world's patient at St Mary's, with a
high-criticality penicillin allergy, a medication and a problem, shared by consent with
Riverside clinicians: one sees the observations only (vital signs, laboratory results and the
other observations), one the whole chart (restricted notes aside), one nothing. Used by the
page, API and FHIR tests alike."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from consent import services as consent_services
from portal.records import services
from portal.records.models import AllergyIntolerance, Condition, MedicationRequest
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped

# What the observations-only consent does not share, in the chart's order.
NOT_SHARED = [
    "Problems", "Medications", "Allergies", "Immunizations", "Procedures", "Encounters",
    "Clinical notes (not restricted ones)", "Documents", "Test reports and imaging",
    "Care plans and goals",
]  # fmt: skip


def partial_world(consent_world, make_staff) -> dict:
    w = dict(consent_world)
    patient, now = w["patient"], timezone.now()
    with unscoped():
        w["allergy"] = services.record_create(
            actor=w["clinician_a"], patient=patient, model=AllergyIntolerance,
            code="91936005", display="Allergy to penicillin", criticality="high",
            recorded_date=now - dt.timedelta(days=30),
        )  # fmt: skip
        w["medication"] = services.record_create(
            actor=w["clinician_a"], patient=patient, model=MedicationRequest, code="860975",
            display="Metformin 500 mg", authored_on=now - dt.timedelta(days=10),
        )  # fmt: skip
        w["problem"] = services.record_create(
            actor=w["clinician_a"], patient=patient, model=Condition, code="44054006",
            display="Diabetes mellitus type 2", onset_date=dt.date(2020, 1, 1),
        )  # fmt: skip
        # A test report and a care plan (issue 17): categories of their own, "reports" and
        # "careplans", which the partial consents below do not share.
        w["report"] = services.diagnostic_report_create(
            actor=w["clinician_a"], patient=patient,
            code={"coding": [{"system": "http://loinc.org", "code": "57698-3",
                              "display": "Lipid panel"}], "text": "Lipid panel"},
            effective_at=now - dt.timedelta(days=5),
            results=[{"observation": w["lab"].pk, "display": "Hemoglobin A1c"}],
            presented_form=[{"contentType": "text/plain",
                             "data": "TGlwaWRzIHdpdGhpbiByYW5nZS4="}],  # "Lipids within range."
        )  # fmt: skip
        w["careplan"] = services.care_plan_create(
            actor=w["clinician_a"], patient=patient, period_start=now - dt.timedelta(days=5),
            category=[{"text": "Diabetes self management plan"}],
            activities=[{"detail": {"code": {"text": "Diabetic diet"}, "status": "in-progress"}}],
            addresses=[{"condition": w["problem"].pk}],
        )  # fmt: skip
        # clinician_b (Riverside): every observation (vital signs, labs, the others) only.
        w["consent"] = consent_services.consent_grant(
            patient=patient, actor=w["account"], grantee_kind="practitioner",
            grantee_user=w["clinician_b"], scope_all=False,
            categories=["vitals", "labs", "observations"],
        )  # fmt: skip
        # Another Riverside clinician: the whole chart (but not the restricted note).
        w["whole"] = make_staff(w["b"], Role.CLINICIAN)
        consent_services.consent_grant(
            patient=patient, actor=w["account"], grantee_kind="practitioner",
            grantee_user=w["whole"],
        )  # fmt: skip
        # And one with labs only: the measurements are shared in part.
        w["labs_only"] = make_staff(w["b"], Role.CLINICIAN)
        consent_services.consent_grant(
            patient=patient, actor=w["account"], grantee_kind="practitioner",
            grantee_user=w["labs_only"], scope_all=False, categories=["labs"],
        )  # fmt: skip
        w["stranger"] = make_staff(w["b"], Role.CLINICIAN)  # no consent at all
    return w
